#include "ferry/buffer.h"

namespace ferry {

bool parseWhenFull(std::string_view text, WhenFull* out) {
  if (text == "block") *out = WhenFull::kBlock;
  else if (text == "drop_oldest") *out = WhenFull::kDropOldest;
  else if (text == "drop_newest") *out = WhenFull::kDropNewest;
  else return false;
  return true;
}

}  // namespace ferry
