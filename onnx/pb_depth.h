/* pb_depth.h - refuse protobuf messages nested too deeply to unpack safely.
 *
 * Call before protobuf-c's unpack on untrusted bytes:
 *
 *     size_t at;
 *     if (nasc_pb_too_deep(&onnx__model_proto__descriptor, data, len,
 *                          NASC_PB_MAX_DEPTH, &at))
 *         ... error: nested more than NASC_PB_MAX_DEPTH messages deep at byte `at`
 */
#ifndef NASC_PB_DEPTH_H
#define NASC_PB_DEPTH_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Real ONNX models nest a dozen levels at most (a subgraph in an attribute
 * of a node of a graph of the model, types of sequences of maps). */
#define NASC_PB_MAX_DEPTH 64

/* True when a message of type desc in data[0..len) holds a sub-message
 * max_depth levels down (the outermost message is level 0); *offset is then
 * the byte offset of that field's key. False otherwise, including for bytes
 * that are not valid protobuf, which the unpacker reports. No allocation, no
 * recursion; max_depth is capped at 255. */
bool nasc_pb_too_deep(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                      int max_depth, size_t *offset);

#endif /* NASC_PB_DEPTH_H */
