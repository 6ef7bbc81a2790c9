# lib/csv: exact records, line numbers and error positions, resynchronisation,
# a round-trip property test and the parse time of a 10,000-row upload.
iotca_add_test(NAME test_csv SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_csv.c LABELS unit)
