# sluice_library(<name> HEADERS <dir>... SOURCES <file>... DEPS <target>...)
#
# One static library per folder of userspace/. A library exports only its own headers: each
# header of the HEADERS folders (relative to userspace/, not recursive) is linked into
# ${CMAKE_BINARY_DIR}/include/<name>/<dir>/, and that directory is the library's only include
# root. Another library sees "proxy/forwarder.hpp" only if it links sluice_proxy, so an include
# across layers that is not declared in DEPS fails the build instead of growing a hidden cycle.
function(sluice_library name)
  cmake_parse_arguments(ARG "" "" "HEADERS;SOURCES;DEPS" ${ARGN})
  set(root ${CMAKE_BINARY_DIR}/include/${name})
  set(linked "")
  foreach(dir IN LISTS ARG_HEADERS)
    file(GLOB headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/userspace/${dir}/*.hpp)
    file(MAKE_DIRECTORY ${root}/${dir})
    foreach(header IN LISTS headers)
      get_filename_component(file ${header} NAME)
      file(CREATE_LINK ${header} ${root}/${dir}/${file} SYMBOLIC)
      list(APPEND linked ${root}/${dir}/${file})
    endforeach()
  endforeach()
  # Links of headers that were deleted or moved must not keep being found.
  file(GLOB_RECURSE stale LIST_DIRECTORIES false ${root}/*)
  foreach(link IN LISTS stale)
    if(NOT link IN_LIST linked)
      file(REMOVE ${link})
    endif()
  endforeach()
  if(ARG_SOURCES)
    add_library(${name} STATIC ${ARG_SOURCES})
    target_include_directories(${name} PUBLIC ${root})
    target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${root})
    target_link_libraries(${name} INTERFACE ${ARG_DEPS})
  endif()
endfunction()
