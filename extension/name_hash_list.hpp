// A backend-lifetime list of lease-name hashes (kept in TopMemoryContext):
// the names a session bound, the names a transaction released.
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/memutils.h"
}

namespace singleton_lock {

class NameHashList {
  public:
    bool contains(uint64 hash) const {
        for (int i = 0; i < count_; i++)
            if (items_[i] == hash) return true;
        return false;
    }
    void append(uint64 hash) {
        if (count_ == capacity_) {
            int capacity = capacity_ == 0 ? 8 : capacity_ * 2;
            items_ = static_cast<uint64*>(
                items_ == nullptr ? MemoryContextAlloc(TopMemoryContext, capacity * sizeof(uint64))
                                  : repalloc(items_, capacity * sizeof(uint64)));
            capacity_ = capacity;
        }
        items_[count_++] = hash;
    }
    void clear() { count_ = 0; }
    int size() const { return count_; }
    uint64 operator[](int i) const { return items_[i]; }

  private:
    uint64* items_ = nullptr;
    int count_ = 0;
    int capacity_ = 0;
};

}  // namespace singleton_lock
