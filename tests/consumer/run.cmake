# ctest's install-and-find-package: install BUILD_DIR into STAGE, configure,
# build and run CONSUMER against it, and check the pkg-config file's flags.
file(REMOVE_RECURSE ${STAGE})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${STAGE}/prefix)
run(${CMAKE_COMMAND} -S ${CONSUMER} -B ${STAGE}/build -DCMAKE_PREFIX_PATH=${STAGE}/prefix
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${STAGE}/build)
run(${STAGE}/build/consumer)
file(GLOB_RECURSE pc ${STAGE}/prefix/*/rpa.pc)
file(READ "${pc}" text)
if(NOT text MATCHES "Libs: -L\\$\\{libdir\\} -lrpa" OR NOT text MATCHES "Version: 0.1.0")
  message(FATAL_ERROR "rpa.pc: ${text}")
endif()
