# Run by the ocipkg-pack target (ocipkgPackage.cmake) once the install rules have run into a
# DESTDIR stage:  cmake -DSTAGE=<stage> -DPREFIX=<the prefix inside it> -DINSTALL_PREFIX=<the prefix> -P
# The package holds PREFIX only, so a file installed anywhere else in the stage (an absolute
# DESTINATION outside CMAKE_INSTALL_PREFIX) would be left out of it without a word: stop instead.

file(GLOB_RECURSE staged LIST_DIRECTORIES false "${STAGE}/*")
string(LENGTH "${PREFIX}/" prefix_length)
set(outside "")
foreach(file IN LISTS staged)
  string(SUBSTRING "${file}" 0 ${prefix_length} head)
  if(NOT head STREQUAL "${PREFIX}/")
    string(REPLACE "${STAGE}" "" installed_at "${file}")
    list(APPEND outside "${installed_at}")
  endif()
endforeach()
if(outside)
  list(LENGTH outside count)
  list(SUBLIST outside 0 5 shown)
  list(JOIN shown ", " shown)
  message(FATAL_ERROR "ocipkg-pack: the install rules put ${count} file(s) outside CMAKE_INSTALL_PREFIX "
                      "(${INSTALL_PREFIX}), which the package cannot hold: ${shown}; install them to a "
                      "DESTINATION relative to the prefix, or pack only the COMPONENTs that hold the library")
endif()
if(NOT IS_DIRECTORY "${PREFIX}")
  message(FATAL_ERROR "ocipkg-pack: the install rules installed nothing (no ${INSTALL_PREFIX} under ${STAGE})")
endif()
