# lib/auth: tenant API keys, operator token, internal credential.
target_sources(iotca PRIVATE ${CMAKE_CURRENT_LIST_DIR}/auth.c)
