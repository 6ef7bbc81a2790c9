# lib/csv: RFC 4180 reader for uploads held in memory.
target_sources(iotca PRIVATE ${CMAKE_CURRENT_LIST_DIR}/csv.c)
