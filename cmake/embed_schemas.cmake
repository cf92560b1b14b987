# Turns schemas/ids.txt and the .avsc files it lists into a C source defining
# `const struct avro_codec_schema_src avro_codec_schema_srcs[]` (see src/codec/avro_codec_schemas.h),
# so the installed binaries need no schema directory.
# Usage: cmake -DIDS=schemas/ids.txt -DOUT=file.c -P embed_schemas.cmake
get_filename_component(dir ${IDS} DIRECTORY)
file(STRINGS ${IDS} lines)
set(arrays "")
set(entries "")
set(seen_ids "")
set(n 0)
foreach(line IN LISTS lines)
  if(line MATCHES "^[ \t]*(#.*)?$")
    continue()
  endif()
  if(NOT line MATCHES "^[ \t]*([0-9]+)[ \t]+([A-Za-z0-9._-]+)[ \t]+([A-Za-z0-9._-]+\\.avsc)[ \t]*$")
    message(FATAL_ERROR "${IDS}: cannot read line '${line}' (expected: id topic file.avsc)")
  endif()
  set(id ${CMAKE_MATCH_1})
  set(topic ${CMAKE_MATCH_2})
  set(avsc ${CMAKE_MATCH_3})
  list(FIND seen_ids ${id} at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "${IDS}: schema id ${id} is listed twice")
  endif()
  list(APPEND seen_ids ${id})
  if(NOT EXISTS ${dir}/${avsc})
    message(FATAL_ERROR "${IDS}: ${avsc} (schema id ${id}) does not exist")
  endif()
  file(READ ${dir}/${avsc} content HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
  string(APPEND arrays "static const char schema_${id}[] = {${bytes} 0x00};\n")
  string(APPEND entries "    {${id}, \"${topic}\", \"${avsc}\", schema_${id}, sizeof schema_${id} - 1},\n")
  math(EXPR n "${n} + 1")
endforeach()
if(n EQUAL 0)
  message(FATAL_ERROR "${IDS}: no schemas listed")
endif()
file(WRITE ${OUT}.tmp "/* Generated from ${IDS} and the schemas it lists; do not edit. */\n"
  "#include \"codec/avro_codec_schemas.h\"\n\n"
  "${arrays}\n"
  "const struct avro_codec_schema_src avro_codec_schema_srcs[] = {\n${entries}};\n"
  "const size_t avro_codec_schema_src_count = ${n};\n")
# Only touch the output when it changed, so an unrelated edit rebuilds nothing.
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
file(REMOVE ${OUT}.tmp)
