# Any bytes through the lib/mqtt decoder in input-chosen chunk sizes,
# checked against a byte-at-a-time run; decoded PUBLISH and SUBSCRIBE data
# re-encoded and decoded again. Seeds: packets captured from
# mosquitto_pub/mosquitto_sub and hand-made malformed ones, in
# corpus/fuzz_mqtt/.
iotca_add_fuzz(NAME fuzz_mqtt SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_mqtt.c LIBS iotca)
