# ocipkg for CMake: prebuilt libraries from OCI registries as IMPORTED targets.
#
#   list(APPEND CMAKE_PREFIX_PATH "${CMAKE_CURRENT_SOURCE_DIR}/node_modules")
#   find_package(ocipkg CONFIG REQUIRED)               # finds node_modules/ocipkg/cmake/
#   ocipkg_add_package(zstd IMAGE ghcr.io/acme/zstd:1.5.6 [TARGET <triple>] [STATIC|SHARED])
#   target_link_libraries(addon PRIVATE ocipkg::zstd)
#   ocipkg_bundle_runtime(addon)                       # shared libraries beside addon, $ORIGIN rpath
#
# Library authors: ocipkg_package(IMAGE ghcr.io/acme/zstd ...) adds the build targets ocipkg-pack
# and ocipkg-push (ocipkgPackage.cmake). A project that is not a Node project finds this package
# with cmake -Docipkg_DIR="$(npx ocipkg cmake-dir)".
#
# Packages are fetched at configure time by the ocipkg-link script of this npm package (its --json
# output is the whole interface), so a build never touches the network. Once a tag is in the store,
# ocipkg-link answers from there without asking the registry, so re-running CMake does not follow a
# tag that has moved: run `ocipkg get IMAGE` (or `ocipkg update` for declared packages), then CMake.
# The resolved manifest digest is kept on the target (OCIPKG_MANIFEST_DIGEST).
#
# Targets: ocipkg::<name> is the package (the <name> given to ocipkg_add_package), an INTERFACE
# target; each library it links, the objects of ocipkg-link --json's libraries[], is the IMPORTED
# library ocipkg::<name>::<lib>, <lib> being the link name. The generated <package>Config.cmake of
# every package in the store names its targets the same way, with <package>::<package> for the
# package: find_package(zstd CONFIG) gives zstd::zstd and zstd::zstd::zstd.
#
# Needs CMake 3.19 (string(JSON), cmake_language(DEFER)): ocipkgConfigVersion.cmake tells an older
# CMake that this package does not suit it, so find_package never loads this file there.
#
# Cache variables that override the defaults:
#   OCIPKG_NODE    the Node.js executable (default: $ENV{npm_node_execpath}, $ENV{NODE}, then PATH)
#   OCIPKG_LINK    the whole ocipkg-link command, as a list (default: OCIPKG_NODE ../bin/ocipkg-link.cjs)
#   OCIPKG_TARGET  target triple for every package without TARGET (default: derived when
#                  cross-compiling, else ocipkg-link's own choice: $ENV{OCIPKG_TARGET} or the host)

include_guard(GLOBAL)
# The caller's policies are those of its own cmake_minimum_required, which may predate what this
# package uses (if(IN_LIST) needs CMP0057, CMake 3.3: libpng still asks for 3.1). find_package
# gives this file a policy scope of its own, and functions keep the policies in force where they
# are defined (ocipkgPackage.cmake, included below, inherits them).
cmake_policy(VERSION 3.19)

# Functions run in their caller's directory, where CMAKE_CURRENT_LIST_DIR is somewhere else.
get_filename_component(_ocipkg_package_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set_property(GLOBAL PROPERTY OCIPKG_PACKAGE_DIR "${_ocipkg_package_dir}")
unset(_ocipkg_package_dir)

# The Node.js executable that runs ocipkg's scripts.
function(_ocipkg_node out)
  if(OCIPKG_NODE)
    set(${out} "${OCIPKG_NODE}" PARENT_SCOPE)
  elseif(DEFINED ENV{npm_node_execpath} AND EXISTS "$ENV{npm_node_execpath}")
    # npm and cmake-js run CMake from a Node process: use the very Node that started the build (not
    # cached, so switching Node versions between builds is followed).
    set(${out} "$ENV{npm_node_execpath}" PARENT_SCOPE)
  elseif(DEFINED ENV{NODE} AND EXISTS "$ENV{NODE}")
    set(${out} "$ENV{NODE}" PARENT_SCOPE)
  else()
    find_program(OCIPKG_NODE NAMES node nodejs DOC "Node.js executable that runs ocipkg-link")
    if(NOT OCIPKG_NODE)
      message(FATAL_ERROR "ocipkg: Node.js not found; set OCIPKG_NODE to the node executable")
    endif()
    set(${out} "${OCIPKG_NODE}" PARENT_SCOPE)
  endif()
endfunction()

# The command line that runs one of ocipkg's bins (bin/<script>): the cache variable <override>
# when set (a whole command, as a list), else Node with the script of this package.
function(_ocipkg_script_command out override script)
  if(${override})
    set(${out} "${${override}}" PARENT_SCOPE)
    return()
  endif()
  _ocipkg_node(node)
  get_property(package_dir GLOBAL PROPERTY OCIPKG_PACKAGE_DIR)
  set(${out} "${node};${package_dir}/bin/${script}" PARENT_SCOPE)
endfunction()

# The ocipkg target triple for the platform CMake builds for, or "" when it cannot be told.
function(_ocipkg_cross_triple out)
  set(triple "")
  string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" cpu)
  if(CMAKE_SYSTEM_NAME STREQUAL "Darwin")
    list(LENGTH CMAKE_OSX_ARCHITECTURES n_archs)
    if(n_archs GREATER 1)
      message(FATAL_ERROR "ocipkg: CMAKE_OSX_ARCHITECTURES names ${n_archs} architectures; "
                          "pass TARGET to ocipkg_add_package for each")
    elseif(n_archs EQUAL 1)
      set(cpu "${CMAKE_OSX_ARCHITECTURES}")
    endif()
  endif()
  if(cpu MATCHES "^(x86_64|amd64|x64)$")
    set(arch x86_64)
  elseif(cpu MATCHES "^(aarch64|arm64)")
    set(arch aarch64)
  elseif(cpu MATCHES "^armv7")
    set(arch armv7)
  elseif(cpu MATCHES "^arm")
    set(arch arm)
  elseif(cpu MATCHES "^(i[3-6]86|x86)$")
    set(arch i686)
  elseif(cpu MATCHES "^(ppc64le|powerpc64le)$")
    set(arch powerpc64le)
  elseif(cpu MATCHES "^riscv64")
    set(arch riscv64gc)
  elseif(cpu MATCHES "^(s390x|loongarch64)$")
    set(arch "${cpu}")
  else()
    set(${out} "" PARENT_SCOPE)
    return()
  endif()

  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    # Only the toolchain knows the C library: look for musl in what it says about itself.
    set(libc gnu)
    if("${CMAKE_LIBRARY_ARCHITECTURE};${CMAKE_C_COMPILER_TARGET};${CMAKE_CXX_COMPILER_TARGET};${CMAKE_C_COMPILER};${CMAKE_CXX_COMPILER}"
       MATCHES "musl")
      set(libc musl)
    endif()
    if(arch MATCHES "^arm")
      set(libc "${libc}eabihf")
    endif()
    set(triple "${arch}-unknown-linux-${libc}")
  elseif(CMAKE_SYSTEM_NAME STREQUAL "Darwin")
    set(triple "${arch}-apple-darwin")
  elseif(CMAKE_SYSTEM_NAME STREQUAL "Windows")
    # MinGW builds use the GNU ABI (their own C++ library, Itanium mangling); Node's are MSVC.
    if(MINGW)
      set(triple "${arch}-pc-windows-gnu")
    else()
      set(triple "${arch}-pc-windows-msvc")
    endif()
  elseif(CMAKE_SYSTEM_NAME STREQUAL "FreeBSD")
    set(triple "${arch}-unknown-freebsd")
  endif()
  set(${out} "${triple}" PARENT_SCOPE)
endfunction()

# Stops configuration on a value CMake would read more into than a string: `;` splits lists, `$`
# starts variable references and generator expressions, quotes, backslashes and newlines end the
# argument it is written into. ocipkg-link refuses such package data at install; this holds the
# line even for data that slipped past, since a CMake project runs what it configures.
function(_ocipkg_check_value value what)
  # ocipkg-link's own rpath for shared libraries, `$ORIGIN`, is the one `$` it prints.
  string(REPLACE "-Wl,-rpath,$ORIGIN" "" value "${value}")
  if(value MATCHES "[;$\"\\\n\r<>]")
    message(FATAL_ERROR "ocipkg: refusing ${what} from ocipkg-link, which holds characters CMake would interpret: ${value}")
  endif()
endfunction()

# The strings of the JSON array <key> (under <json>) as a CMake list.
function(_ocipkg_json_strings out json)
  set(items "")
  string(JSON n LENGTH "${json}" ${ARGN})
  if(n GREATER 0)
    math(EXPR last "${n} - 1")
    foreach(i RANGE ${last})
      string(JSON item GET "${json}" ${ARGN} ${i})
      string(JOIN "." where ${ARGN} ${i})
      _ocipkg_check_value("${item}" "${where}")
      list(APPEND items "${item}")
    endforeach()
  endif()
  set(${out} "${items}" PARENT_SCOPE)
endfunction()

# The string at <path>... in <json>, or "" where it is absent or null.
function(_ocipkg_json_string out json)
  string(JSON type ERROR_VARIABLE missing TYPE "${json}" ${ARGN})
  set(value "")
  if(NOT missing AND type STREQUAL "STRING")
    string(JSON value GET "${json}" ${ARGN})
    string(JOIN "." where ${ARGN})
    _ocipkg_check_value("${value}" "${where}")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

#[[
ocipkg_add_package(<name> IMAGE <reference> [TARGET <triple>] [STATIC|SHARED])

Fetches <reference> (and the packages it requires) into the ocipkg store and defines the INTERFACE
IMPORTED target ocipkg::<name>: include directories, definitions and compile options, then the
IMPORTED STATIC or SHARED library ocipkg::<name>::<lib> of each library, in link order, then system
libraries. STATIC (the default) and SHARED choose between the two builds when a package ships both.
]]
function(ocipkg_add_package name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "STATIC;SHARED" "IMAGE;TARGET" "")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "ocipkg_add_package(${name}): unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_IMAGE)
    message(FATAL_ERROR "ocipkg_add_package(${name}): IMAGE <reference> is required")
  endif()
  if(arg_STATIC AND arg_SHARED)
    message(FATAL_ERROR "ocipkg_add_package(${name}): STATIC and SHARED exclude each other")
  endif()

  set(target "${arg_TARGET}")
  if(NOT target AND OCIPKG_TARGET)
    set(target "${OCIPKG_TARGET}")
  endif()
  if(NOT target AND CMAKE_CROSSCOMPILING)
    _ocipkg_cross_triple(target)
    if(NOT target)
      message(FATAL_ERROR "ocipkg_add_package(${name}): no target triple for ${CMAKE_SYSTEM_NAME}/"
                          "${CMAKE_SYSTEM_PROCESSOR}; pass TARGET <triple>")
    endif()
  endif()

  set(linkage "")
  if(arg_SHARED)
    set(linkage --shared)
  elseif(arg_STATIC)
    set(linkage --static)
  endif()

  if(TARGET ocipkg::${name})
    # One package may be asked for by several subprojects; the same request is the same target.
    get_target_property(previous ocipkg::${name} OCIPKG_REQUEST)
    if(previous STREQUAL "${arg_IMAGE};${target};${linkage}")
      return()
    endif()
    message(FATAL_ERROR "ocipkg_add_package(${name}): ocipkg::${name} already names ${previous}")
  endif()

  _ocipkg_script_command(link OCIPKG_LINK ocipkg-link.cjs)
  set(command ${link} --json)
  if(target)
    list(APPEND command --target "${target}")
  endif()
  list(APPEND command ${linkage} "${arg_IMAGE}")
  if(target)
    message(STATUS "ocipkg: resolving ${arg_IMAGE} for ${target}")
  else()
    message(STATUS "ocipkg: resolving ${arg_IMAGE}")
  endif()
  # An IMAGE may be an alias declared in the project's package.json, looked for from the source
  # directory: the build directory (where CMake runs) may be anywhere.
  set(project_dir_set FALSE)
  if(NOT DEFINED ENV{OCIPKG_PROJECT_DIR})
    set(ENV{OCIPKG_PROJECT_DIR} "${CMAKE_CURRENT_SOURCE_DIR}")
    set(project_dir_set TRUE)
  endif()
  execute_process(
    COMMAND ${command}
    RESULT_VARIABLE status
    OUTPUT_VARIABLE json
    ERROR_VARIABLE error)
  if(project_dir_set)
    unset(ENV{OCIPKG_PROJECT_DIR})
  endif()
  if(NOT status EQUAL 0)
    string(STRIP "${error}" error)
    if(NOT error)
      set(error "ocipkg-link exited with ${status}")
    endif()
    # The leading space keeps CMake from re-wrapping ocipkg's one-line message.
    message(FATAL_ERROR " ${error}")
  endif()

  foreach(key packages libraries)
    string(JSON ${key}_type ERROR_VARIABLE json_error TYPE "${json}" ${key})
    if(json_error OR NOT ${key}_type STREQUAL "ARRAY")
      message(FATAL_ERROR "ocipkg_add_package(${name}): ocipkg-link printed no link description: ${json_error}")
    endif()
  endforeach()
  foreach(key includeDirs defines cflags libs runtimeFiles prefix)
    _ocipkg_json_strings(${key} "${json}" ${key})
  endforeach()
  foreach(key target manifestDigest version root)
    # Absent and null (a package without a version) both leave the property empty.
    _ocipkg_json_string(${key}_value "${json}" packages 0 ${key})
  endforeach()

  # Libraries, the builds ocipkg-link chose: the location is the file to link; on ELF the SONAME is
  # the name of the runtime file (ocipkg-link names runtime files as the loader looks for them). A
  # Mach-O install name cannot be told from a file name: unset.
  set(link_libraries "")
  set(lib_names "")
  set(lib_files "")
  string(JSON n_libraries LENGTH "${json}" libraries)
  if(n_libraries GREATER 0)
    math(EXPR last "${n_libraries} - 1")
    foreach(index RANGE ${last})
      foreach(key name kind file runtime importLibrary)
        _ocipkg_json_string(lib_${key} "${json}" libraries ${index} ${key})
      endforeach()
      list(APPEND lib_names "${lib_name}")
      list(APPEND lib_files "${lib_file}")
      set(lib_target "ocipkg::${name}::${lib_name}")
      if(TARGET "${lib_target}")
        # Two packages of the closure ship a library of the same name.
        set(lib_target "ocipkg::${name}::${lib_name}.${index}")
      endif()
      if(lib_importLibrary)
        add_library("${lib_target}" SHARED IMPORTED GLOBAL)
        set_target_properties("${lib_target}" PROPERTIES IMPORTED_IMPLIB "${lib_importLibrary}" IMPORTED_LOCATION "${lib_runtime}")
      elseif(lib_kind STREQUAL "static")
        add_library("${lib_target}" STATIC IMPORTED GLOBAL)
        set_target_properties("${lib_target}" PROPERTIES IMPORTED_LOCATION "${lib_file}")
      else()
        add_library("${lib_target}" SHARED IMPORTED GLOBAL)
        set_target_properties("${lib_target}" PROPERTIES IMPORTED_LOCATION "${lib_file}")
        if(NOT APPLE)
          get_filename_component(soname "${lib_runtime}" NAME)
          set_target_properties("${lib_target}" PROPERTIES IMPORTED_SONAME "${soname}")
        endif()
      endif()
      list(APPEND link_libraries "${lib_target}")
    endforeach()
  endif()

  # What is left of the link flags: system libraries and options. -L and the package's own -l are
  # covered by the imported libraries above, rpaths by ocipkg_bundle_runtime.
  set(link_options "")
  set(framework "")
  foreach(flag IN LISTS libs)
    if(framework)
      list(APPEND link_libraries "-framework ${flag}")
      set(framework "")
    elseif(flag STREQUAL "-framework")
      set(framework TRUE)
    elseif(flag MATCHES "^-L" OR flag MATCHES "^-Wl,-rpath" OR flag IN_LIST lib_files)
      continue()
    elseif(flag MATCHES "^-l:?(.+)$")
      set(lib "${CMAKE_MATCH_1}")
      if(NOT lib IN_LIST lib_names)
        list(APPEND link_libraries "${lib}")
      endif()
    else()
      list(APPEND link_options "${flag}")
    endif()
  endforeach()

  # cflags repeat include dirs and defines as -I/-D; only the other options are left to add.
  set(compile_options "")
  foreach(flag IN LISTS cflags)
    if(NOT flag MATCHES "^-[ID]")
      list(APPEND compile_options "${flag}")
    endif()
  endforeach()

  add_library(ocipkg::${name} INTERFACE IMPORTED GLOBAL)
  set_target_properties(ocipkg::${name} PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${includeDirs}"
    INTERFACE_COMPILE_DEFINITIONS "${defines}"
    INTERFACE_COMPILE_OPTIONS "${compile_options}"
    INTERFACE_LINK_LIBRARIES "${link_libraries}"
    INTERFACE_LINK_OPTIONS "${link_options}"
    OCIPKG_REQUEST "${arg_IMAGE};${target};${linkage}"
    OCIPKG_IMAGE "${arg_IMAGE}"
    OCIPKG_TARGET "${target_value}"
    OCIPKG_MANIFEST_DIGEST "${manifestDigest_value}"
    OCIPKG_VERSION "${version_value}"
    OCIPKG_ROOT "${root_value}"
    OCIPKG_PREFIX "${prefix}"
    OCIPKG_RUNTIME_FILES "${runtimeFiles}")
endfunction()

#[[
ocipkg_bundle_runtime(<target>)

Copies the runtime files (shared libraries: .so under their SONAME, dylibs under their install
name, the DLLs of Windows import libraries) of every ocipkg package <target> links, through
ocipkg_add_package or a generated <name>Config.cmake, next to the built <target> after each build,
and adds the directory of the loading binary ($ORIGIN on ELF, @loader_path on macOS) to its install
rpath, which it is built with (BUILD_WITH_INSTALL_RPATH), so the result loads on a machine that
never ran ocipkg and names no directory of this one; add any other directory it needs to
INSTALL_RPATH. Windows has no rpath:
Node loads an addon with LOAD_WITH_ALTERED_SEARCH_PATH, so the DLLs it imports are looked for in
the addon's own directory first. Call it anywhere in the directory that defines <target>: the
copies are set up at the end of that directory, once all of its target_link_libraries calls are
known.
]]
function(ocipkg_bundle_runtime target)
  if(NOT TARGET "${target}")
    message(FATAL_ERROR "ocipkg_bundle_runtime: no target named ${target}")
  endif()
  if(APPLE)
    set(origin "@loader_path")
  elseif(NOT WIN32)
    set(origin "$ORIGIN")
  endif()
  if(origin)
    # Built with its install rpath: CMake would add the store directory of every shared library
    # linked by path to the build tree's rpath, and an addon is shipped from the build tree
    # (cmake-js's build/Release) naming the builder's store after the copies beside it.
    set_property(TARGET "${target}" APPEND PROPERTY INSTALL_RPATH "${origin}")
    set_property(TARGET "${target}" PROPERTY BUILD_WITH_INSTALL_RPATH ON)
  endif()
  # A deferred call reads its arguments' variables when it runs: pass the name in by value.
  cmake_language(EVAL CODE "cmake_language(DEFER CALL _ocipkg_bundle_runtime_now [[${target}]])")
endfunction()

# The runtime files of every ocipkg package <target> links, directly or through other targets.
function(_ocipkg_collect_runtime out target)
  set(files "")
  set(seen "")
  get_target_property(queue "${target}" LINK_LIBRARIES)
  while(queue)
    list(POP_FRONT queue lib)
    # A static library's own dependencies appear as $<LINK_ONLY:...> in its interface.
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.+)>$" "\\1" lib "${lib}")
    if(NOT TARGET "${lib}" OR lib IN_LIST seen)
      continue()
    endif()
    list(APPEND seen "${lib}")
    get_target_property(runtime "${lib}" OCIPKG_RUNTIME_FILES)
    if(runtime)
      list(APPEND files ${runtime})
    endif()
    get_target_property(nested "${lib}" INTERFACE_LINK_LIBRARIES)
    if(nested)
      list(APPEND queue ${nested})
    endif()
  endwhile()
  list(REMOVE_DUPLICATES files)
  set(${out} "${files}" PARENT_SCOPE)
endfunction()

function(_ocipkg_bundle_runtime_now target)
  _ocipkg_collect_runtime(runtime "${target}")
  # A macOS framework ships as its whole .framework directory, the others as single files.
  set(files "")
  set(bundles "")
  foreach(file IN LISTS runtime)
    if(IS_DIRECTORY "${file}")
      list(APPEND bundles "${file}")
    else()
      list(APPEND files "${file}")
    endif()
  endforeach()
  set(commands "")
  if(files)
    # copy_if_different follows the store's symlinks: the copies are real files named as the
    # loader looks for them (the SONAME), and unchanged files keep their time stamps.
    list(APPEND commands COMMAND "${CMAKE_COMMAND}" -E copy_if_different ${files} "$<TARGET_FILE_DIR:${target}>")
  endif()
  foreach(bundle IN LISTS bundles)
    get_filename_component(name "${bundle}" NAME)
    list(APPEND commands COMMAND "${CMAKE_COMMAND}" -E copy_directory "${bundle}" "$<TARGET_FILE_DIR:${target}>/${name}")
  endforeach()
  if(commands)
    add_custom_command(TARGET "${target}" POST_BUILD ${commands}
      COMMENT "ocipkg: copying runtime libraries beside ${target}"
      VERBATIM)
  endif()
endfunction()

include("${CMAKE_CURRENT_LIST_DIR}/ocipkgPackage.cmake")
