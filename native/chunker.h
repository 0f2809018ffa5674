// Capture-thread side of the pipeline: turns packets into pcap records laid
// out in chunks, decides rotation, and hands full (or, once in a while,
// partial) chunks to the writer.
#pragma once
#include <cstdint>

#include "chunk.h"
#include "source.h"

namespace n2d {

struct ChunkerConfig {
  int linktype;
  uint32_t snaplen;  // written in the file header and applied to every record
  uint32_t cut;      // records are cut to this length (0: keep what the source gave)
  bool nano;
  uint64_t max_file_bytes;
  uint64_t max_file_ns;
  uint64_t max_file_packets;
  uint64_t flush_ns;
};

class Chunker : public PacketSink {
 public:
  Chunker(const ChunkerConfig& cfg, ChunkPool& pool, ChunkQueue& out) : cfg_(cfg), pool_(pool), out_(out) {}

  void packet(const RawPacket& pkt) override;
  // Called between polls: writes a partial chunk when data has waited longer
  // than flush_ns, and closes a file that has been open too long (live).
  void tick(uint64_t now_ns, bool rotate_by_clock);
  void close_file();

  uint64_t packets() const { return packets_; }
  uint64_t bytes() const { return bytes_; }

 private:
  void open_file(uint64_t ts_ns);
  void write(const uint8_t* p, size_t n);
  void submit_partial();
  PacketMeta& next_meta();

  ChunkerConfig cfg_;
  ChunkPool& pool_;
  ChunkQueue& out_;

  Chunk* cur_ = nullptr;  // non-null while a file is open
  uint32_t file_seq_ = 0;
  uint64_t file_len_ = 0;
  uint64_t file_packets_ = 0;
  uint64_t file_first_ts_ = 0;
  bool dirty_ = false;  // bytes in cur_ not yet handed to the writer
  uint64_t last_flush_ns_ = 0;

  uint64_t packets_ = 0;
  uint64_t bytes_ = 0;
  // A chunk's metadata array starts at what the last full chunk held, and
  // some: grown from 1024 records by doubling, it was copied four times a
  // chunk at 100 B frames, more bytes than the frames themselves.
  uint32_t meta_hint_ = 1024;
};

}  // namespace n2d
