# The iotca command line's product, association and device verbs, driven
# as a tenant uses them against etcd, the registry and the association
# service: the product page's association flow, CSV errors, exit codes and
# --help.
iotca_add_script_test(NAME e2e_cli_association
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_association.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
