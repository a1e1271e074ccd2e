# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS): every directory of the
# staged package 0755. CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS is passed to
# mkdir(2), so the umask of whoever runs cpack still applies (027 would give
# 0750 directories, which dpkg would create so on the target system).
file(GLOB_RECURSE sluice_staged_dirs LIST_DIRECTORIES true "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*")
foreach(dir IN LISTS sluice_staged_dirs)
    if(IS_DIRECTORY "${dir}" AND NOT IS_SYMLINK "${dir}")
        file(CHMOD "${dir}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                        WORLD_READ WORLD_EXECUTE)
    endif()
endforeach()
