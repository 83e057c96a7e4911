# Writes OUT (a C++ file) with the project version and the git commit it was built from. Run at
# every build (cli/CMakeLists.txt), so that the commit follows new commits without a reconfigure;
# configure_file rewrites OUT only when its text changes, so an unchanged commit rebuilds nothing.
# Outside a git checkout (a source tarball) the commit is "unknown".
execute_process(
  COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
  OUTPUT_VARIABLE TROUPE_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
if(failed OR TROUPE_COMMIT STREQUAL "")
  set(TROUPE_COMMIT "unknown")
else()
  execute_process(
    COMMAND git -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
    OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT changes STREQUAL "")
    string(APPEND TROUPE_COMMIT "-modified")
  endif()
endif()
configure_file("${TEMPLATE}" "${OUT}" @ONLY)
