# Turns a text file into a C source defining `const char canary_default_plan_yaml[]`.
# Usage: cmake -DIN=file -DOUT=file.c -P embed.cmake
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "/* Generated from ${IN}; do not edit. */\n"
  "#include <stddef.h>\n"
  "const char canary_default_plan_yaml[] = {${bytes} 0x00};\n"
  "const size_t canary_default_plan_yaml_len = sizeof canary_default_plan_yaml - 1;\n")
