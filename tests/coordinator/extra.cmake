# Generate service tools and the Python example client test (included by lanlm_test_dir).
if(TARGET lanlm_coordinator)
  add_executable(lanlm_generate_test_server ${PROJECT_SOURCE_DIR}/tests/coordinator/tools/generate_test_server.cc)
  target_include_directories(lanlm_generate_test_server PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(lanlm_generate_test_server PRIVATE lanlm_coordinator lanlm_test_support)

  add_executable(lanlm_generate_bench ${PROJECT_SOURCE_DIR}/tests/coordinator/tools/generate_bench.cc)
  target_include_directories(lanlm_generate_bench PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(lanlm_generate_bench PRIVATE lanlm_coordinator)

  # Python code from the same proto, generated into the build tree.
  find_program(LANLM_GRPC_PYTHON_PLUGIN grpc_python_plugin)
  find_program(LANLM_PROTOC protoc)
  find_program(LANLM_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(LANLM_GRPC_PYTHON_PLUGIN AND LANLM_PYTHON3 AND LANLM_PROTOC)
    set(py_out ${PROJECT_BINARY_DIR}/python)
    add_custom_command(
      OUTPUT ${py_out}/generate_pb2.py ${py_out}/generate_pb2_grpc.py
      COMMAND ${CMAKE_COMMAND} -E make_directory ${py_out}
      COMMAND ${LANLM_PROTOC} -I ${PROJECT_SOURCE_DIR}/protos --python_out=${py_out} --grpc_out=${py_out}
              --plugin=protoc-gen-grpc=${LANLM_GRPC_PYTHON_PLUGIN} ${PROJECT_SOURCE_DIR}/protos/generate.proto
      DEPENDS ${PROJECT_SOURCE_DIR}/protos/generate.proto
      COMMENT "Python code for generate.proto")
    add_custom_target(lanlm_generate_python ALL DEPENDS ${py_out}/generate_pb2.py ${py_out}/generate_pb2_grpc.py)
    add_test(NAME GeneratePythonExample
             COMMAND ${LANLM_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/coordinator/generate_example_test.py
                     $<TARGET_FILE:lanlm_generate_test_server> ${PROJECT_SOURCE_DIR}/client/examples/generate.py
                     ${py_out})
    set_tests_properties(GeneratePythonExample PROPERTIES LABELS unit TIMEOUT 120)
  endif()
endif()
