#!/usr/bin/env bash
# System test: the bash completion the package installs knows every command,
# subcommand and option that the real `sluice` lists in its --help, and
# completes option values as documented. The completion function is run as
# bash would run it (COMP_WORDS/COMP_CWORD in, COMPREPLY out).
#   tests/system/bash_completion.sh path/to/sluice path/to/completion-file
set -euo pipefail

SLUICE=$(realpath "${1:?usage: bash_completion.sh path/to/sluice path/to/completion}")
COMPLETION=$(realpath "${2:?usage: bash_completion.sh path/to/sluice path/to/completion}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-completion-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

passed=0
failed=0
ok()  { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }

# shellcheck source=/dev/null
source "$COMPLETION"
if [ "$(complete -p sluice 2>/dev/null)" = "complete -F _sluice sluice" ]; then
    ok "the file registers _sluice for sluice"
else
    bad "the file does not register a completion for sluice: $(complete -p sluice 2>&1)"
fi

# complete WORD...: what completing the last WORD of `sluice WORD...` offers, one per line.
complete_words() {
    COMP_WORDS=(sluice "$@")
    COMP_CWORD=$#
    COMP_LINE="sluice $*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _sluice
    [ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}"
}

# help_section ARGS... SECTION: the first word of each entry of a --help section
# ("Subcommands" or "Options"); the entries are the lines indented by two spaces.
help_section() {
    local section=${*: -1}
    "$SLUICE" "${@:1:$#-1}" --help | awk -v s="$section:" '
        $0 == s { on = 1; next }
        on && /^[^ ]/ { on = 0 }
        on && /^  [^ ]/ { print $1 }'
}

# long_options ARGS...: the long options of a (sub)command's --help.
long_options() {
    help_section "$@" Options | tr ',' '\n' | grep -E '^--[a-z]' || true
}

# expect_all WHAT OFFERED WANTED: every line of WANTED is a line of OFFERED.
expect_all() {
    local what=$1 offered=$2 wanted=$3 missing
    missing=$(comm -13 <(sort -u <<<"$offered") <(sort -u <<<"$wanted") | tr '\n' ' ')
    if [ -z "$wanted" ]; then bad "$what: nothing to compare with (--help changed format?)"
    elif [ -z "$missing" ]; then ok "$what"
    else bad "$what: missing $missing"; fi
}

# ---- commands, subcommands and options against --help -----------------------------
commands=$(help_section Subcommands)
expect_all "every command of sluice --help completes" "$(complete_words "")" "$commands"
expect_all "sluice's own options complete" "$(complete_words --)" "$(long_options)"

groups=0
for cmd in $commands; do
    subs=$(help_section "$cmd" Subcommands)
    if [ -z "$subs" ]; then
        expect_all "options of '$cmd'" "$(complete_words "$cmd" --)" "$(long_options "$cmd")"
        continue
    fi
    groups=$((groups + 1))
    expect_all "every subcommand of '$cmd' completes" "$(complete_words "$cmd" "")" "$subs"
    for sub in $subs; do
        expect_all "options of '$cmd $sub'" "$(complete_words "$cmd" "$sub" --)" "$(long_options "$cmd" "$sub")"
    done
done
# A test that cannot fail is a defect: make sure the groups were found.
if [ "$groups" -ge 4 ]; then ok "found $groups commands with subcommands (bundle, audit, media, policy …)"
else bad "found only $groups commands with subcommands in --help"; fi

# ---- the completion offers nothing that sluice does not have -----------------------
extra=$(comm -23 <(complete_words "" | sort -u) <(sort -u <<<"$commands") | tr '\n' ' ')
if [ -z "$extra" ]; then ok "no command completes that sluice lacks"; else bad "completes unknown commands: $extra"; fi

# ---- partial words and values ----------------------------------------------------------
check_exact() {
    local what=$1 want=$2; shift 2
    local got
    got=$(complete_words "$@" | sort | tr '\n' ' ')
    if [ "$got" = "$want" ]; then ok "$what"; else bad "$what: got '$got', want '$want'"; fi
}
mkdir -p keys/sub release
touch keys/alice.key keys/alice.pub
check_exact "a prefix completes: 're'" "reject releases rescan " re
check_exact "subcommand prefix: 'audit ex'" "export " audit ex
check_exact "--priority values" "high normal " push x.tar --priority ""
check_exact "audit query --format values" "csv json table " audit query --format ""
check_exact "audit export --format values" "cef csv jsonl syslog " audit export --format ""
check_exact "--sign completes file names" "keys/alice.key keys/alice.pub keys/sub " bundle create release --sign keys/
check_exact "--trust completes directories only" "keys/sub " bundle verify b --trust keys/
check_exact "free-text values complete nothing" "" bundle create release --channel ""
check_exact "options after a value still complete" "--sign " bundle create release --channel models --si

echo "bash completion: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
