// FlatBuilder::end_object: the table's vtable, written after the table and
// shared with an identical earlier one, as the JS builder does it.
#include "flatbuf.h"

namespace n2d {

uint32_t FlatBuilder::end_object() {
  add<int32_t>(0);  // the table's soffset to its vtable, patched below
  uint32_t table = offset();
  size_t used = vtable_.size();
  while (used > 0 && vtable_[used - 1] == 0) used--;
  for (size_t i = used; i-- > 0;) add<int16_t>(int16_t(vtable_[i] != 0 ? table - vtable_[i] : 0));
  add<int16_t>(int16_t(table - object_start_));
  uint16_t len = uint16_t((used + 2) * 2);
  add<int16_t>(int16_t(len));

  const uint8_t* vt = data();
  for (uint32_t existing : vtables_) {
    const uint8_t* old = at(existing);
    uint16_t old_len;
    std::memcpy(&old_len, old, 2);
    if (old_len != len || std::memcmp(old, vt, len) != 0) continue;
    size_ = table;  // drop the vtable just written, point at the old one
    int32_t rel = int32_t(existing) - int32_t(table);
    std::memcpy(at(table), &rel, 4);
    return table;
  }
  vtables_.push_back(offset());
  int32_t rel = int32_t(offset()) - int32_t(table);
  std::memcpy(at(table), &rel, 4);
  return table;
}

}  // namespace n2d
