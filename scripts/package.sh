#!/usr/bin/env bash
# Builds the Debian package from an existing build directory (CPack: the
# install step only; the three binaries are brought up to date first, nothing
# else is built) and checks it with lintian. With --install-test it then
# installs the package on this machine, checks what it put where, runs the
# tools and the daemons from it, purges it and checks that nothing is left.
#
#   scripts/package.sh [--install-test] [BUILD_DIR]
#
# BUILD_DIR (or $SLUICE_BUILD_DIR) defaults to build/, the directory
# scripts/test.sh makes; the package goes to BUILD_DIR/packages/. Prints one
# "ok"/"FAIL" line per check and exits 1 if any failed. --install-test needs
# root, refuses to run where a sluice package or its directories already
# exist, and leaves the machine as it found it, also when a check fails: the
# package purged, the accounts it created deleted, the sysctls it set put back.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

install_test=0
build=${SLUICE_BUILD_DIR:-build}
for arg in "$@"; do
    case $arg in
        --install-test) install_test=1 ;;
        -h | --help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) echo "package.sh: unknown option $arg" >&2; exit 2 ;;
        *) build=$arg ;;
    esac
done

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL - $*"; }
# check WHAT CMD...: one line for CMD's success.
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }
# show FILE: a command's output, indented, after a FAIL line.
show() { sed 's/^/#     /' "$1" | tail -n 25; }
summary() {
    echo "package: $passed passed, $failed failed ($(($(date +%s) - STARTED)) s)"
    [ "$failed" -eq 0 ]
}
die() { bad "$*"; summary || exit 1; }
STARTED=$(date +%s)
umask 022

# ---- build the package --------------------------------------------------------------
[ -f "$build/CMakeCache.txt" ] || die "$build is not a configured build directory (run scripts/test.sh, or name one)"
build=$(cd "$build" && pwd)
out=$build/packages
log=$build/packages.log
mkdir -p "$out"
rm -f "$out"/sluice_*.deb
# Brings the binaries up to date, and CPackConfig.cmake and the generated
# pages (configure again if packaging/ changed); cpack itself builds nothing.
if cmake --build "$build" --target sluice sluice-sender sluice-receiver >"$log" 2>&1 &&
    [ -f "$build/CPackConfig.cmake" ] &&
    (cd "$build" && cpack -G DEB -B "$out") >>"$log" 2>&1; then
    :
else
    show "$log"
    die "cpack in $build (log: $log)"
fi
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
deb=$out/sluice_${version}_$(dpkg --print-architecture).deb
if [ -n "$version" ] && [ -f "$deb" ]; then ok "built ${deb#"$ROOT"/}"; else die "no package sluice_${version}_*.deb in $out"; fi
rm -rf "$out/_CPack_Packages"

# The first entry of the changelog names this version.
changelog_version=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/doc/sluice/changelog.gz | gzip -dc |
    sed -n '1s/^sluice (\([^)]*\)).*/\1/p')
if [ "$changelog_version" = "$version" ]; then ok "changelog.gz starts with version $version"
else bad "changelog.gz starts with version '$changelog_version', the package is $version: add an entry to packaging/debian/changelog"; fi

# Modes: directories 0755, binaries 0755, everything else 0644, all root:root.
modes=$(dpkg-deb --contents "$deb" | awk '
    $2 != "root/root" { print "owner", $2, $6; next }
    /^d/ { if ($1 != "drwxr-xr-x") print $1, $6; next }
    $6 ~ /^\.\/usr\/s?bin\// { if ($1 != "-rwxr-xr-x") print $1, $6; next }
    { if ($1 != "-rw-r--r--") print $1, $6 }')
if [ -z "$modes" ]; then ok "file modes: directories and binaries 0755, other files 0644, root:root"
else bad "file modes: $modes"; fi

# ---- lintian ---------------------------------------------------------------------------
command -v lintian >/dev/null || die "lintian is not installed (scripts/setup.sh installs it)"
lintian_out=$out/lintian.txt
lintian --info "$deb" >"$lintian_out" 2>&1 || true
if grep -q '^E: ' "$lintian_out"; then
    bad "lintian: $(grep -c '^E: ' "$lintian_out") error(s)"
    grep '^E: ' "$lintian_out" | sed 's/^/#     /'
elif grep -q '^\(internal error\|lintian: \)' "$lintian_out"; then
    bad "lintian did not run"; show "$lintian_out"
else
    ok "lintian: no errors ($(grep -c '^W: ' "$lintian_out" || true) warnings; ${lintian_out#"$ROOT"/})"
    grep '^W: ' "$lintian_out" | sed 's/^/#     /' || true
fi

if [ "$install_test" -eq 0 ]; then summary; exit; fi

# ==== --install-test ======================================================================
[ "$(id -u)" -eq 0 ] || die "--install-test needs root (dpkg -i, users, /etc)"
package_state() { dpkg-query -W -f='${db:Status-Status}' sluice 2>/dev/null || true; }
state=$(package_state)
[ -z "$state" ] || [ "$state" = not-installed ] ||
    die "a sluice package is on this machine already ($state): the install test would remove it"
for d in /etc/sluice /var/lib/sluice /var/spool/sluice /run/sluice; do
    [ ! -e "$d" ] || die "$d exists: the install test would delete it (purge)"
done

ACCOUNTS_USERS="sluice"
ACCOUNTS_GROUPS="sluice sluice-operators sluice-officers sluice-auditors"
existing_users="" existing_groups=""
for u in $ACCOUNTS_USERS; do getent passwd "$u" >/dev/null && existing_users+=" $u"; done
for g in $ACCOUNTS_GROUPS; do getent group "$g" >/dev/null && existing_groups+=" $g"; done
# The kernel settings the package applies, and their values now.
sysctl_saved=()
while IFS='= ' read -r key _; do
    case $key in "" | \#* | \;*) continue ;; esac
    current=$(sysctl -n "$key" 2>/dev/null) && sysctl_saved+=("$key=$current")
done < "$ROOT/systemd/sluice.sysctl"

WORK=$(mktemp -d /tmp/sluice-package-XXXXXX)
chmod 0755 "$WORK"             # the daemons (user sluice) read the test bundle
PIDS=()
installed=0
cleanup() {
    set +e
    local pid entry u g
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$installed" -eq 1 ]; then
        echo "# cleanup: dpkg --purge sluice"
        dpkg --purge sluice >/dev/null 2>&1 || echo "# cleanup: dpkg --purge sluice FAILED" >&2
    fi
    for u in $ACCOUNTS_USERS; do
        case " $existing_users " in *" $u "*) ;; *) getent passwd "$u" >/dev/null && userdel "$u" ;; esac
    done
    for g in $ACCOUNTS_GROUPS; do
        case " $existing_groups " in *" $g "*) ;; *) getent group "$g" >/dev/null && groupdel "$g" ;; esac
    done
    for entry in "${sysctl_saved[@]}"; do
        [ "$(sysctl -n "${entry%%=*}" 2>/dev/null)" = "${entry#*=}" ] || sysctl -q -w "$entry" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"

# ---- install ---------------------------------------------------------------------------
if [ -d /run/systemd/system ]; then echo "# systemd runs on this machine"; else echo "# systemd does not run on this machine (PID 1: $(cat /proc/1/comm))"; fi
installed=1
if dpkg -i "$deb" >dpkg-install.txt 2>&1; then ok "dpkg -i ${deb##*/}"; else bad "dpkg -i ${deb##*/}"; show dpkg-install.txt; summary; exit 1; fi
sed 's/^/#     /' dpkg-install.txt | grep -v -e 'Selecting previously' -e 'Reading database' -e 'Preparing to unpack' || true
check "dpkg: sluice is installed" test "$(package_state)" = installed
dpkg -L sluice >package-files.txt
check "dpkg: the 3 configuration files are conffiles" \
    test "$(dpkg-query -W -f='${Conffiles}' sluice | awk 'NF {print $1}' | sort | tr '\n' ' ')" = \
         "/etc/sluice/policy.toml /etc/sluice/receiver.toml /etc/sluice/sender.toml "

check "sluice --version: sluice $version" test "$(/usr/bin/sluice --version)" = "sluice $version"
check "sluice-sender --version" test "$(/usr/sbin/sluice-sender --version)" = "sluice-sender $version"
check "sluice-receiver --version" test "$(/usr/sbin/sluice-receiver --version)" = "sluice-receiver $version"

# ---- accounts ---------------------------------------------------------------------------
for f in /usr/lib/sysusers.d/sluice.conf /usr/lib/tmpfiles.d/sluice.conf /usr/lib/sysctl.d/60-sluice.conf; do
    [ -f "$f" ] || die "$f is not installed"
done
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd sluice) || true
if getent passwd sluice >/dev/null && [ "$home" = /var/lib/sluice ] && [ "$shell" = /usr/sbin/nologin ]; then
    ok "user sluice (home /var/lib/sluice, shell /usr/sbin/nologin)"
else bad "user sluice: $(getent passwd sluice || echo missing)"; fi
check "user sluice is a system user" test "$(id -u sluice)" -lt 1000
for g in $ACCOUNTS_GROUPS; do check "group $g" getent group "$g"; done
check "user sluice's primary group is sluice" test "$(id -gn sluice)" = sluice
while read -r type user group _; do
    [ "$type" = m ] || continue
    check "user $user is a member of $group" sh -c "id -nG '$user' | tr ' ' '\n' | grep -qx '$group'"
done </usr/lib/sysusers.d/sluice.conf

# ---- directories, as /usr/lib/tmpfiles.d/sluice.conf says -------------------------------
ndirs=0
while read -r type path mode user group _; do
    case $type in d | D) ;; *) continue ;; esac
    ndirs=$((ndirs + 1))
    want=$(printf '%s:%s %04o' "$user" "$group" $((8#$mode)))
    if [ -d "$path" ]; then
        got=$(stat -c '%U:%G %f' "$path")
        got=$(printf '%s %04o' "${got% *}" $((16#${got##* } & 8#7777)))
    else got="no such directory"; fi
    if [ "$got" = "$want" ]; then ok "directory $path $want"; else bad "directory $path: want $want, got $got"; fi
done </usr/lib/tmpfiles.d/sluice.conf
check "tmpfiles: at least 10 directories checked" test "$ndirs" -ge 10
check "directory /etc/sluice/trusted root:root 0755" test "$(stat -c '%U:%G %a' /etc/sluice/trusted)" = "root:root 755"

# ---- the units, the manual pages, the completion -----------------------------------------
mkdir units
cp /usr/lib/systemd/system/sluice-release@.service units/sluice-release@pkgtest.service 2>/dev/null ||
    cp /lib/systemd/system/sluice-release@.service units/sluice-release@pkgtest.service
cp /lib/systemd/system/sluice-release@.timer units/sluice-release@pkgtest.timer
for unit in /lib/systemd/system/sluice-sender.service /lib/systemd/system/sluice-receiver.service \
    units/sluice-release@pkgtest.service units/sluice-release@pkgtest.timer; do
    # Also checks that the man: pages of Documentation= exist.
    if systemd-analyze verify "$unit" >verify.txt 2>&1 && [ ! -s verify.txt ]; then
        ok "systemd-analyze verify ${unit##*/}"
    else bad "systemd-analyze verify ${unit##*/}"; show verify.txt; fi
done
for page in sluice.1 sluice-sender.8 sluice-receiver.8; do
    check "man page ${page%.*}(${page##*.})" test -f "/usr/share/man/man${page##*.}/$page.gz"
done
check "bash completion registers _sluice" \
    bash -c 'source /usr/share/bash-completion/completions/sluice && complete -p sluice | grep -q _sluice'

# ---- smoke: keys, a bundle, the installed configuration, the daemons ---------------------
# The installed programs, whatever PATH says.
sluice() { /usr/bin/sluice "$@"; }
mkdir keys release
head -c 100000 /dev/urandom >release/model.bin
echo '{"ok": true}' >release/meta.json
if sluice keygen release --dir keys >create.txt 2>&1 && sluice bundle create release --out bag --channel models --version 1.0.0 --changes "first" \
    --reason "package test" --approved-by "package.sh" --rollback-to 0.0.0 --sign keys/release.key >create.txt 2>&1 &&
    sluice bundle pack bag --out bundle.tar >>create.txt 2>&1; then
    ok "sluice keygen, bundle create, bundle pack"
else bad "sluice keygen, bundle create, bundle pack"; show create.txt; fi
mkdir trust && cp keys/release.pub trust/
check "sluice bundle verify (bag and archive)" \
    sh -c '/usr/bin/sluice bundle verify bag --trust trust && /usr/bin/sluice bundle verify bundle.tar --trust trust'

install -m 0644 keys/release.pub /etc/sluice/trusted/release.pub || true
for daemon in sender receiver; do
    if setpriv --reuid=sluice --regid=sluice --init-groups "/usr/sbin/sluice-$daemon" --config "/etc/sluice/$daemon.toml" --check-config \
        >"check-$daemon.txt" 2>&1; then
        ok "sluice-$daemon --check-config /etc/sluice/$daemon.toml (as user sluice)"
    else bad "sluice-$daemon --check-config /etc/sluice/$daemon.toml"; show "check-$daemon.txt"; fi
done
check "sluice policy check /etc/sluice/policy.toml" sluice policy check /etc/sluice/policy.toml

# Both daemons as the units run them (user sluice, the installed configuration): they
# must be able to create their sockets, state, audit logs and metrics where the
# package's directories are.
wait_for() { for _ in $(seq 100); do "$@" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
for daemon in receiver sender; do
    setpriv --reuid=sluice --regid=sluice --init-groups "/usr/sbin/sluice-$daemon" --config "/etc/sluice/$daemon.toml" 2>"$daemon.log" &
    PIDS+=($!)
    if wait_for test -S "/run/sluice/$daemon.sock"; then ok "sluice-$daemon starts (socket /run/sluice/$daemon.sock)"
    else bad "sluice-$daemon did not create /run/sluice/$daemon.sock"; show "$daemon.log"; fi
done
if sluice status --json >status.json 2>status.err; then ok "sluice status answers through both sockets"
else bad "sluice status"; show status.err; fi
if sluice push bundle.tar >push.txt 2>&1; then ok "sluice push bundle.tar (the sender reads, verifies and queues it)"
else bad "sluice push bundle.tar"; show push.txt; fi
for daemon in sender receiver; do
    check "the $daemon's audit log is in /var/lib/sluice/$daemon (owner sluice)" \
        test "$(stat -c %U "/var/lib/sluice/$daemon/audit.db" 2>/dev/null)" = sluice
    check "the $daemon's metrics file is in /var/lib/sluice/metrics" \
        wait_for test -s "/var/lib/sluice/metrics/sluice_$daemon.prom"
done
# The receiver (not a member of sluice-officers) must leave the quarantine's
# setgid group as tmpfiles made it: officers read every quarantined copy.
check "the quarantine is still 2750 sluice:sluice-officers with the receiver running" \
    test "$(stat -c '%a %U:%G' /var/lib/sluice/quarantine)" = "2750 sluice:sluice-officers"
for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
rc=0
for pid in "${PIDS[@]}"; do wait "$pid" || rc=$?; done
PIDS=()
check "both daemons stop cleanly on SIGTERM" test "$rc" -eq 0

# ---- purge -----------------------------------------------------------------------------
if dpkg --purge sluice >purge.txt 2>&1; then ok "dpkg --purge sluice"; installed=0
else bad "dpkg --purge sluice"; show purge.txt; summary; exit 1; fi
sed 's/^/#     /' purge.txt | grep -v 'Reading database' || true
check "purge warns before deleting /var/lib/sluice (the audit databases)" \
    grep -q '^sluice: purge: deleting /var/lib/sluice.*audit' purge.txt
state=$(package_state)
check "dpkg: sluice is gone (${state:-unknown to dpkg})" test -z "$state" -o "$state" = not-installed
left=""
while read -r path; do
    # Shared directories (/usr/bin, /etc, ...) stay; files and the package's own directories go.
    [ -e "$path" ] || continue
    if [ ! -d "$path" ] || [[ $path == *sluice* ]]; then left+=" $path"; fi
done <package-files.txt
if [ -z "$left" ]; then ok "nothing of the package's $(wc -l <package-files.txt) paths is left"; else bad "left after purge:$left"; fi
for d in /etc/sluice /var/lib/sluice /var/spool/sluice /run/sluice; do check "purge removed $d" test ! -e "$d"; done
check "purge kept the user sluice (Debian policy)" getent passwd sluice
for g in $ACCOUNTS_GROUPS; do check "purge kept the group $g" getent group "$g"; done

summary
