# A checkpoint written by the engine is read by a Python reader that knows only the
# safetensors layout (json + struct), proving that standard tools can open it.
add_executable(lanlm_write_checkpoint ${PROJECT_SOURCE_DIR}/tests/engine/tools/write_checkpoint.cc)
target_link_libraries(lanlm_write_checkpoint PRIVATE lanlm_engine)
add_test(NAME CheckpointPythonReader
         COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/engine/read_checkpoint.py
                 $<TARGET_FILE:lanlm_write_checkpoint>)
set_tests_properties(CheckpointPythonReader PROPERTIES LABELS unit TIMEOUT 60)
