/* pb_depth.c - how deeply a protobuf message nests, measured without recursion.
 *
 * protobuf-c unpacks nested messages by recursion, one C frame per level, so
 * a few hundred kB of ModelProto -> GraphProto -> NodeProto -> AttributeProto
 * -> GraphProto ... overflows the stack. This walk reads the wire format with
 * an explicit stack of message ends, follows only the fields the descriptor
 * says are messages, and stops at the first one past the limit. Anything it
 * cannot read (a truncated varint, a length past the end, a group) ends the
 * walk without a verdict: the unpacker then reports the damage itself.
 */
#include "pb_depth.h"

#include <stddef.h>

/* A varint at data[*pos..end); false when it is truncated or too long. */
static bool read_varint(const uint8_t *data, size_t end, size_t *pos, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= end) return false;
        uint8_t b = data[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

bool nasc_pb_too_deep(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                      int max_depth, size_t *offset) {
    enum { STACK = 256 };
    struct frame {
        const ProtobufCMessageDescriptor *desc; /* the message being read */
        size_t end;                             /* one past its last byte */
    } stack[STACK];
    if (max_depth < 1) max_depth = 1;
    if (max_depth >= STACK) max_depth = STACK - 1;
    int top = 0;
    stack[0] = (struct frame){desc, len};
    size_t pos = 0;
    for (;;) {
        while (top > 0 && pos == stack[top].end) top--;
        if (pos >= stack[top].end) return false; /* the outermost message is done */
        uint64_t key, n;
        size_t at = pos;
        if (!read_varint(data, stack[top].end, &pos, &key)) return false;
        switch (key & 7) {
        case 0:
            if (!read_varint(data, stack[top].end, &pos, &n)) return false;
            break;
        case 1:
            if (stack[top].end - pos < 8) return false;
            pos += 8;
            break;
        case 5:
            if (stack[top].end - pos < 4) return false;
            pos += 4;
            break;
        case 2: {
            if (!read_varint(data, stack[top].end, &pos, &n)) return false;
            if (n > stack[top].end - pos) return false;
            uint64_t number = key >> 3;
            const ProtobufCFieldDescriptor *f =
                number <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(
                                           stack[top].desc, (unsigned)number)
                                     : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && n > 0) {
                if (top + 1 >= max_depth) {
                    if (offset) *offset = at;
                    return true;
                }
                top++;
                stack[top] = (struct frame){f->descriptor, pos + (size_t)n};
            } else {
                pos += (size_t)n;
            }
            break;
        }
        default: return false; /* groups and bad wire types: the unpacker's to report */
        }
    }
}
