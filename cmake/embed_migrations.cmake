cmake_minimum_required(VERSION 3.21) # script mode: IN_LIST, file(COPY_FILE)
# Compiles migrations/NNN_name.sql into one C source defining store_migrations[] (see
# src/store/store_migrations.h): version, file name, SQL text and its SHA-256, in version order.
# Usage: cmake -DDIR=migrations -DOUT=file.c -P embed_migrations.cmake
file(GLOB files RELATIVE ${DIR} ${DIR}/*.sql)
list(SORT files)
set(body "")
set(count 0)
set(seen_versions "")
foreach(f ${files})
  if(NOT f MATCHES "^([0-9]+)_([a-z0-9_]+)\\.sql$")
    message(FATAL_ERROR "migrations/${f}: the name must be NNN_name.sql (digits, '_', lower-case name)")
  endif()
  math(EXPR version "${CMAKE_MATCH_1}")
  if(version IN_LIST seen_versions)
    message(FATAL_ERROR "migrations/${f}: version ${version} is used twice")
  endif()
  list(APPEND seen_versions ${version})
  file(SHA256 ${DIR}/${f} sum)
  file(READ ${DIR}/${f} content HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
  string(APPEND body "static const char sql_${count}[] = {${bytes} 0x00};\n")
  set(entries "${entries}  {${version}, \"${f}\", sql_${count}, sizeof sql_${count} - 1, \"${sum}\"},\n")
  math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
  message(FATAL_ERROR "no migrations found in ${DIR}")
endif()
file(WRITE ${OUT}.tmp "/* Generated from the .sql files in ${DIR} by cmake/embed_migrations.cmake; do not edit. */\n"
  "#include \"store/store_migrations.h\"\n\n"
  "${body}\n"
  "const struct store_migration store_migrations[] = {\n${entries}};\n"
  "const size_t store_migrations_count = ${count};\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
