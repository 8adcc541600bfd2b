# ocipkg for library authors: pack and push the project's own install() tree as an ocipkg package.
# Included by ocipkgConfig.cmake; see ocipkg_package below.
#
#   find_package(ocipkg CONFIG REQUIRED)      # or cmake -Docipkg_DIR="$(npx ocipkg cmake-dir)"
#   ocipkg_package(IMAGE ghcr.io/acme/greet LICENSE MIT)
#   cmake --build build --target ocipkg-pack  # -> build/greet-1.2.0-x86_64-unknown-linux-gnu.tar
#   cmake --build build --target ocipkg-push  # -> ghcr.io/acme/greet:1.2.0, this target appended
#
# Cache variable that overrides the default:
#   OCIPKG_CLI     the whole ocipkg command, as a list (default: OCIPKG_NODE ../bin/ocipkg.cjs)

include_guard(GLOBAL)

# <value> as a JSON string literal.
function(_ocipkg_json_quote out value)
  string(REPLACE "\\" "\\\\" value "${value}")
  string(REPLACE "\"" "\\\"" value "${value}")
  string(REPLACE "\n" "\\n" value "${value}")
  string(REPLACE "\t" "\\t" value "${value}")
  set(${out} "\"${value}\"" PARENT_SCOPE)
endfunction()

# A CMake list as a JSON array of strings.
function(_ocipkg_json_array out)
  set(items "")
  foreach(item IN LISTS ARGN)
    _ocipkg_json_quote(quoted "${item}")
    list(APPEND items "${quoted}")
  endforeach()
  list(JOIN items ", " joined)
  set(${out} "[${joined}]" PARENT_SCOPE)
endfunction()

# What the installed package's consumers see of a usage requirement: $<INSTALL_INTERFACE:x> is x,
# $<BUILD_INTERFACE:x> is nothing, and the $<LINK_ONLY:x> CMake writes for a static library's
# private dependencies becomes "static-only:x" (needed only when the static library is linked).
function(_ocipkg_installed_items out)
  set(items "")
  foreach(item IN LISTS ARGN)
    if(item MATCHES "^\\$<BUILD_INTERFACE:")
      continue()
    endif()
    string(REGEX REPLACE "^\\$<INSTALL_INTERFACE:(.*)>$" "\\1" item "${item}")
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "static-only:\\1" item "${item}")
    if(NOT item STREQUAL "")
      list(APPEND items "${item}")
    endif()
  endforeach()
  set(${out} "${items}" PARENT_SCOPE)
endfunction()

# The usage requirement <property> of <target> (INTERFACE_COMPILE_DEFINITIONS, ...) as the
# installed package's consumers see it (see _ocipkg_installed_items); empty when it is not set.
function(_ocipkg_installed_property out target property)
  get_target_property(raw "${target}" ${property})
  if(NOT raw)
    set(raw "")
  endif()
  _ocipkg_installed_items(items ${raw})
  set(${out} "${items}" PARENT_SCOPE)
endfunction()

# The link items of <target>'s interface as the package records them: another target of this
# project by name, a system library as -l<name> (plain names, and files in the toolchain's own
# library directories), imported targets of other projects as "imported:<name>" (which the package
# does not carry: pack warns), INTERFACE imported targets (Threads::Threads) by what they link.
function(_ocipkg_link_items out target)
  _ocipkg_installed_property(queue "${target}" INTERFACE_LINK_LIBRARIES)
  set(items "")
  set(implicit_dirs ${CMAKE_C_IMPLICIT_LINK_DIRECTORIES} ${CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES})
  set(seen "")
  while(queue)
    list(POP_FRONT queue item)
    set(prefix "")
    if(item MATCHES "^static-only:(.*)$")
      set(prefix "static-only:")
      set(item "${CMAKE_MATCH_1}")
    endif()
    if(item IN_LIST seen)
      continue()
    endif()
    list(APPEND seen "${item}")
    if(TARGET "${item}")
      get_target_property(imported "${item}" IMPORTED)
      get_target_property(type "${item}" TYPE)
      get_target_property(aliased "${item}" ALIASED_TARGET)
      if(aliased)
        list(APPEND items "${prefix}${aliased}")
      elseif(NOT imported)
        list(APPEND items "${prefix}${item}")
      elseif(type STREQUAL "INTERFACE_LIBRARY")
        _ocipkg_installed_property(nested "${item}" INTERFACE_LINK_LIBRARIES)
        foreach(n IN LISTS nested)
          string(REGEX REPLACE "^static-only:" "" n "${n}")
          list(APPEND queue "${prefix}${n}")
        endforeach()
      else()
        list(APPEND items "${prefix}imported:${item}")
      endif()
    elseif(IS_ABSOLUTE "${item}")
      get_filename_component(dir "${item}" DIRECTORY)
      get_filename_component(file "${item}" NAME)
      if(dir IN_LIST implicit_dirs AND file MATCHES "^lib([^.]+)\\.(a|so|dylib|tbd)")
        list(APPEND items "${prefix}-l${CMAKE_MATCH_1}")
      else()
        list(APPEND items "${prefix}${item}")
      endif()
    elseif(item MATCHES "^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$" AND NOT item MATCHES "^-")
      list(APPEND items "${prefix}-l${item}")
    else()
      list(APPEND items "${prefix}${item}")
    endif()
  endwhile()
  set(${out} "${items}" PARENT_SCOPE)
endfunction()

# Every buildsystem target defined in <dir> and below.
function(_ocipkg_targets_below out dir)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _ocipkg_targets_below(more "${sub}")
    list(APPEND targets ${more})
  endforeach()
  set(${out} "${targets}" PARENT_SCOPE)
endfunction()

#[[
ocipkg_package(IMAGE <reference> [TARGET <triple>] [VERSION <v>] [NAME <name>]
               [COMPONENT <component>...] [REQUIRES <reference>...] [DEFINES <def>...]
               [LINK_FLAGS <flag>...] [LICENSE <spdx>] [DESCRIPTION <text>])

Adds the build targets
  ocipkg-pack  the project's install() rules run with DESTDIR=<build>/ocipkg-package/stage-<config>
               (COMPONENTs only, when given; on Windows into that directory as the prefix), then
               `ocipkg pack` of CMAKE_INSTALL_PREFIX inside that stage into
               <build>/<name>-<version>-<triple>.tar (files installed outside the prefix stop it);
  ocipkg-push  ocipkg-pack, then `ocipkg publish IMAGE --append` of that archive: this target is
               added to (or replaced in) the tag's index; signed when OCIPKG_SIGN_KEY names a key.

The triple is derived from the toolchain as ocipkg_add_package derives it (TARGET overrides it;
Node-style names such as linux-arm64 are accepted), the version is PROJECT_VERSION unless VERSION
is given, and an IMAGE without a tag gets the version as its tag. What the libraries need beyond
their files comes from the targets themselves: the INTERFACE_COMPILE_DEFINITIONS and the system
libraries in INTERFACE_LINK_LIBRARIES (m, pthread, dl; a static library's private ones too) of
every library target whose file the install rules put into the prefix.
]]
function(ocipkg_package)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "IMAGE;TARGET;VERSION;NAME;LICENSE;DESCRIPTION"
                        "COMPONENT;REQUIRES;DEFINES;LINK_FLAGS")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "ocipkg_package: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_IMAGE)
    message(FATAL_ERROR "ocipkg_package: IMAGE <reference> is required")
  endif()
  if(TARGET ocipkg-pack)
    if(CMAKE_PROJECT_INCLUDE)
      # The way to add the call to a project one does not edit runs it at every project() call.
      message(FATAL_ERROR "ocipkg_package: called twice; a build packs one package (CMAKE_PROJECT_INCLUDE runs after every project() call, here ${PROJECT_NAME}'s too: give the file as CMAKE_PROJECT_${CMAKE_PROJECT_NAME}_INCLUDE instead)")
    endif()
    message(FATAL_ERROR "ocipkg_package: called twice; a build packs one package")
  endif()

  set(version "${arg_VERSION}")
  if(version STREQUAL "")
    set(version "${PROJECT_VERSION}")
  endif()
  if(version STREQUAL "")
    message(FATAL_ERROR "ocipkg_package: no version: give project(... VERSION x.y.z) or VERSION <v>")
  endif()

  _ocipkg_script_command(cli OCIPKG_CLI ocipkg.cjs)
  if(arg_TARGET)
    # The one triple table is ocipkg's: it says what a Node-style name (linux-arm64) stands for.
    execute_process(COMMAND ${cli} target "${arg_TARGET}" OUTPUT_VARIABLE triple ERROR_VARIABLE error
                    RESULT_VARIABLE failed OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(failed)
      string(STRIP "${error}" error)
      message(FATAL_ERROR "ocipkg_package: TARGET ${arg_TARGET}: ${error}")
    endif()
  else()
    _ocipkg_cross_triple(triple)
  endif()
  if(triple STREQUAL "")
    message(FATAL_ERROR "ocipkg_package: cannot tell the target triple of this toolchain "
                        "(CMAKE_SYSTEM_NAME=${CMAKE_SYSTEM_NAME}, CMAKE_SYSTEM_PROCESSOR=${CMAKE_SYSTEM_PROCESSOR}); "
                        "pass TARGET <triple>")
  endif()

  # The tag: the one IMAGE names, else the version. A digest names content, not a place to push.
  set(image "${arg_IMAGE}")
  if(image MATCHES "@")
    message(FATAL_ERROR "ocipkg_package: IMAGE ${image} names a digest; push to a tag")
  endif()
  string(REGEX MATCH "[^/]*$" last "${image}")
  if(image MATCHES "^oci:")
    # oci:PATH[:TAG]: a tag is what follows the last colon after the directory's name.
    string(REGEX MATCH "[^/]*$" last "${image}")
    string(REGEX REPLACE "^oci:" "" last "${last}")
  endif()
  if(NOT last MATCHES ":")
    set(image "${image}:${version}")
  endif()

  set(name "${arg_NAME}")
  if(name STREQUAL "")
    string(REGEX REPLACE ":[^:/]*$" "" repository "${image}")
    string(REGEX MATCH "[^/:]*$" name "${repository}")
  endif()
  # The name an archive records must be a registry image; a layout destination has none.
  set(archive_image "${image}")
  if(image MATCHES "^oci:")
    set(archive_image "localhost/${name}:${version}")
  endif()

  set(work "${CMAKE_BINARY_DIR}/ocipkg-package")
  # The install rules run with DESTDIR, not with --prefix: a project whose destinations are absolute
  # (zlib's "${CMAKE_INSTALL_PREFIX}/lib", computed at configure time) would otherwise install into
  # the real prefix (/usr/local) while --prefix staged the rest. DESTDIR puts every file under the
  # stage, and the package is the configured prefix's place in it. CMake's documentation rules
  # DESTDIR out on Windows (a prefix there starts with a drive letter): --prefix stages it there.
  set(stage "${work}/stage-$<CONFIG>")
  if(CMAKE_HOST_WIN32)
    set(prefix "${stage}")
    set(stage_env "")
    set(prefix_args --prefix "${prefix}")
  else()
    set(prefix "${stage}${CMAKE_INSTALL_PREFIX}")
    set(stage_env "DESTDIR=${stage}")
    set(prefix_args "")
  endif()
  set(archive "${CMAKE_BINARY_DIR}/${name}-${version}-${triple}.tar")
  set(targets_file "${work}/targets-$<CONFIG>.json")

  get_property(multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
  set(config_args "")
  if(multi_config)
    set(config_args --config "$<CONFIG>")
  endif()
  get_property(package_dir GLOBAL PROPERTY OCIPKG_PACKAGE_DIR)
  set(install "${CMAKE_COMMAND}" -E env ${stage_env} "${CMAKE_COMMAND}" --install "${CMAKE_BINARY_DIR}" ${config_args} ${prefix_args})
  set(install_commands "")
  if(arg_COMPONENT)
    foreach(component IN LISTS arg_COMPONENT)
      list(APPEND install_commands COMMAND ${install} --component "${component}")
    endforeach()
  else()
    set(install_commands COMMAND ${install})
  endif()

  set(metadata --version "${version}")
  if(arg_NAME)
    list(APPEND metadata --name "${arg_NAME}")
  endif()
  if(arg_LICENSE)
    list(APPEND metadata --license "${arg_LICENSE}")
  endif()
  if(arg_DESCRIPTION)
    list(APPEND metadata --description "${arg_DESCRIPTION}")
  endif()
  foreach(required IN LISTS arg_REQUIRES)
    list(APPEND metadata --requires "${required}")
  endforeach()
  foreach(define IN LISTS arg_DEFINES)
    list(APPEND metadata --define "${define}")
  endforeach()
  foreach(flag IN LISTS arg_LINK_FLAGS)
    list(APPEND metadata "--link-flag=${flag}")
  endforeach()

  add_custom_target(ocipkg-pack
    COMMAND "${CMAKE_COMMAND}" -E rm -rf "${stage}"
    ${install_commands}
    COMMAND "${CMAKE_COMMAND}" "-DSTAGE=${stage}" "-DPREFIX=${prefix}" "-DINSTALL_PREFIX=${CMAKE_INSTALL_PREFIX}"
            -P "${package_dir}/cmake/ocipkgStaged.cmake"
    COMMAND ${cli} pack "${prefix}" "${archive}" -t "${archive_image}" --target "${triple}" ${metadata}
            --cmake-targets "${targets_file}"
    COMMENT "ocipkg: packing ${image} for ${triple} into ${archive}"
    VERBATIM USES_TERMINAL)
  add_custom_target(ocipkg-push
    COMMAND ${cli} publish "${image}" "--target=${triple}=${archive}" --append
    COMMENT "ocipkg: pushing ${archive} to ${image}"
    VERBATIM USES_TERMINAL)
  add_dependencies(ocipkg-push ocipkg-pack)

  # The build's targets are known only once the whole project is read.
  cmake_language(EVAL CODE
    "cmake_language(DEFER DIRECTORY [[${CMAKE_SOURCE_DIR}]] CALL _ocipkg_package_finish [[${targets_file}]])")
endfunction()

# At the end of the top-level directory: ocipkg-pack depends on everything `all` builds (what the
# install rules install), the library targets are described for pack, and static libraries that a
# Node addon could not link are warned about.
function(_ocipkg_package_finish targets_file)
  _ocipkg_targets_below(all_targets "${CMAKE_SOURCE_DIR}")
  set(records "")
  foreach(target IN LISTS all_targets)
    get_target_property(type "${target}" TYPE)
    if(type MATCHES "^(EXECUTABLE|STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY)$")
      get_target_property(excluded "${target}" EXCLUDE_FROM_ALL)
      if(NOT excluded)
        add_dependencies(ocipkg-pack "${target}")
      endif()
    endif()
    if(NOT type MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|INTERFACE_LIBRARY)$")
      continue()
    endif()

    if(type STREQUAL "STATIC_LIBRARY" AND NOT WIN32 AND NOT APPLE)
      get_target_property(pic "${target}" POSITION_INDEPENDENT_CODE)
      if(NOT pic)
        message(WARNING "ocipkg_package: static library ${target} is not position-independent: a Node addon "
                        "(a shared object) cannot link it. Set POSITION_INDEPENDENT_CODE ON on it "
                        "(or CMAKE_POSITION_INDEPENDENT_CODE ON for the whole build).")
      endif()
    endif()

    _ocipkg_installed_property(defines "${target}" INTERFACE_COMPILE_DEFINITIONS)
    _ocipkg_link_items(links "${target}")
    _ocipkg_json_quote(name_json "${target}")
    _ocipkg_json_quote(type_json "${type}")
    _ocipkg_json_array(defines_json ${defines})
    _ocipkg_json_array(links_json ${links})
    # File names depend on the configuration: file(GENERATE) fills them in per configuration.
    set(files "")
    if(type STREQUAL "STATIC_LIBRARY" OR type STREQUAL "SHARED_LIBRARY")
      set(files "\"$<TARGET_FILE_NAME:${target}>\", \"$<TARGET_LINKER_FILE_NAME:${target}>\"")
      if(type STREQUAL "SHARED_LIBRARY" AND NOT WIN32)
        get_target_property(soversion "${target}" SOVERSION)
        if(soversion)
          string(APPEND files ", \"$<TARGET_SONAME_FILE_NAME:${target}>\"")
        endif()
      endif()
    endif()
    list(APPEND records
      "{\"name\": ${name_json}, \"type\": ${type_json}, \"files\": [${files}], \"defines\": ${defines_json}, \"links\": ${links_json}}")
  endforeach()
  list(JOIN records ",\n    " joined)
  # The JSON's own text must not be read as generator expressions beyond the file names: the
  # only $< in the values are what the targets' properties hold, which file(GENERATE) evaluates.
  file(GENERATE OUTPUT "${targets_file}" CONTENT "{\n  \"targets\": [\n    ${joined}\n  ]\n}\n")
endfunction()
