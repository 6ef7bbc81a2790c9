# Any bytes through lib/csv to the end, errors and all, with roomy and tiny
# caps; every record must survive a re-encode and parse. Seeds: templates,
# valid files (quotes, CRLF, BOM, lone CR) and each malformed case, in
# corpus/fuzz_csv/.
iotca_add_fuzz(NAME fuzz_csv SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_csv.c LIBS iotca)
