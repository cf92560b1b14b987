/* canaryctl: placeholder until the simulator lands. */
#include <stdio.h>
int main(void) {
  fprintf(stderr, "canaryctl: not built yet\n");
  return 2;
}
