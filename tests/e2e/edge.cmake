# iotca-edge end to end with clients nobody here wrote: mosquitto_sub and
# mosquitto_pub, paho-mqtt, and raw MQTT bytes over Python's ssl module,
# against a throwaway etcd, the registry, the association service and the
# edge on loopback ports picked at run time (tests/e2e/iotca_fixture.py:
# Suite, Edge). The NNG side is watched and fed with iotca-tap; the tests
# that need it are skipped when it is not built.
iotca_add_script_test(NAME e2e_edge
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_edge.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
