# lib/mqtt: every client packet type from spec-exact bytes, chunking
# (byte at a time == whole buffer, several packets per buffer), remaining
# length boundaries and the cap, every reserved-flag and string rule,
# CONNECT variants, encoders checked by a reference decoder, topic tables.
iotca_add_test(NAME test_mqtt SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mqtt.c LABELS unit)
