# docs/api.md is generated from the proto comments; fails when it is stale.
iotca_add_script_test(NAME api_doc_drift
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/scripts/gen-api-doc.py
          --check ${CMAKE_SOURCE_DIR}/docs/api.md
  TIMEOUT 60 LABELS unit)
