# The client examples of examples/ (Python grpcio, Node.js grpc-js, the C
# device on libmosquitto) against a suite started here: etcd, registry,
# association and edge on loopback ports, the edge's NNG side watched and
# fed with iotca-tap. The Node.js tests need `npm ci --prefix
# examples/node` and are skipped only when node is not installed; the
# device tests need iotca-device, built when libmosquitto-dev is there.
iotca_add_script_test(NAME e2e_examples
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_examples.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
