# lib/mqtt: MQTT 3.1.1 server-side codec (decoder, encoders, topic rules).
target_sources(iotca PRIVATE ${CMAKE_CURRENT_LIST_DIR}/mqtt.c
                             ${CMAKE_CURRENT_LIST_DIR}/mqtt_encode.c)
