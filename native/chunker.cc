#include "chunker.h"

#include <algorithm>
#include <cstring>

#include "parse.h"

namespace n2d {
namespace {

inline void put32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }  // pcap is written in host order

}  // namespace

void Chunker::open_file(uint64_t ts_ns) {
  cur_ = pool_.get();
  cur_->reset_for(file_seq_, 0);
  cur_->first = true;
  cur_->first_ts_ns = ts_ns;
  file_len_ = 0;
  file_packets_ = 0;
  file_first_ts_ = ts_ns;
  uint8_t hdr[24];
  put32(hdr, cfg_.nano ? 0xa1b23c4d : 0xa1b2c3d4);
  uint16_t major = 2, minor = 4;
  memcpy(hdr + 4, &major, 2);
  memcpy(hdr + 6, &minor, 2);
  put32(hdr + 8, 0);
  put32(hdr + 12, 0);
  put32(hdr + 16, cfg_.snaplen);
  put32(hdr + 20, uint32_t(cfg_.linktype));
  write(hdr, sizeof hdr);
  file_len_ = sizeof hdr;
}

void Chunker::write(const uint8_t* p, size_t n) {
  while (n > 0) {
    if (cur_->len == cur_->cap) {
      uint64_t next_offset = cur_->offset + cur_->cap;
      meta_hint_ = cur_->count + cur_->count / 8;
      out_.push(cur_);
      cur_ = pool_.get();
      cur_->reset_for(file_seq_, next_offset);
    }
    size_t take = std::min(n, cur_->cap - cur_->len);
    memcpy(cur_->buf + cur_->len, p, take);
    cur_->len += take;
    p += take;
    n -= take;
  }
  dirty_ = true;
}

PacketMeta& Chunker::next_meta() {
  if (cur_->count == cur_->meta_cap) {
    uint32_t cap = cur_->meta_cap ? cur_->meta_cap * 2 : std::max<uint32_t>(meta_hint_, 1024);
    auto* m = static_cast<PacketMeta*>(realloc(cur_->meta, size_t(cap) * sizeof(PacketMeta)));
    if (!m) abort();
    cur_->meta = m;
    cur_->meta_cap = cap;
  }
  return cur_->meta[cur_->count++];
}

void Chunker::packet(const RawPacket& pkt) {
  // The record keeps the source's fields when precisions agree; otherwise
  // (and for the index) the time is counted in nanoseconds.
  const uint64_t ts_ns = uint64_t(pkt.sec) * 1000000000ull + uint64_t(pkt.frac) * (pkt.frac_ns ? 1 : 1000);
  uint32_t rec_sec = pkt.sec, rec_frac = pkt.frac;
  if (pkt.frac_ns != cfg_.nano) {
    rec_sec = uint32_t(ts_ns / 1000000000ull);
    rec_frac = uint32_t(cfg_.nano ? ts_ns % 1000000000ull : ts_ns % 1000000000ull / 1000);
  }
  const uint32_t tag = pkt.has_tag ? 4 : 0;
  uint32_t caplen = pkt.caplen + tag;
  const uint32_t wirelen = pkt.wirelen + tag;
  if (cfg_.cut && caplen > cfg_.cut) caplen = cfg_.cut;

  if (cur_) {
    bool full = cfg_.max_file_bytes && file_packets_ > 0 && file_len_ + 16 + caplen > cfg_.max_file_bytes;
    bool many = cfg_.max_file_packets && file_packets_ >= cfg_.max_file_packets;
    // Imports can go back in time; only forward distance counts as age.
    bool old = cfg_.max_file_ns && ts_ns >= file_first_ts_ && ts_ns - file_first_ts_ >= cfg_.max_file_ns;
    if (full || many || old) close_file();
  }
  if (!cur_) open_file(ts_ns);

  const uint64_t record_offset = file_len_;
  uint8_t rh[16];
  put32(rh, rec_sec);
  put32(rh + 4, rec_frac);
  put32(rh + 8, caplen);
  put32(rh + 12, wirelen);
  write(rh, sizeof rh);

  // The frame as stored: the kernel's VLAN tag goes back after the MACs.
  const uint8_t* frame = pkt.data;
  uint8_t tagged[kParseBytes];
  if (tag) {
    uint8_t t[4] = {uint8_t(pkt.tpid >> 8), uint8_t(pkt.tpid), uint8_t(pkt.tci >> 8), uint8_t(pkt.tci)};
    uint32_t head = std::min<uint32_t>(12, caplen);
    write(pkt.data, head);
    if (caplen > 12) write(t, std::min<uint32_t>(4, caplen - 12));
    if (caplen > 16) write(pkt.data + 12, caplen - 16);
    uint32_t n = std::min(caplen, kParseBytes);
    memcpy(tagged, pkt.data, std::min<uint32_t>(12, n));
    if (n > 12) memcpy(tagged + 12, t, std::min<uint32_t>(4, n - 12));
    if (n > 16) memcpy(tagged + 16, pkt.data + 12, n - 16);
    frame = tagged;
  } else {
    write(pkt.data, caplen);
  }

  file_len_ += 16 + caplen;
  file_packets_++;
  packets_++;
  bytes_ += caplen;

  PacketMeta& m = next_meta();
  parse_packet(cfg_.linktype, frame, std::min(caplen, kParseBytes), m);
  m.ts_ns = ts_ns;
  m.offset = record_offset;
  m.caplen = caplen;
  m.wirelen = wirelen;
  cur_->committed = file_len_;
}

void Chunker::submit_partial() {
  // O_DIRECT writes whole blocks: the block holding the end of the data goes
  // out zero-padded now and again, completed, with the next chunk.
  Chunk* next = pool_.get();
  uint64_t end = cur_->offset + cur_->len;
  next->reset_for(file_seq_, align_down(end));
  size_t tail = size_t(end - next->offset);
  memcpy(next->buf, cur_->buf + (next->offset - cur_->offset), tail);
  next->len = tail;
  out_.push(cur_);
  cur_ = next;
  dirty_ = false;
}

void Chunker::tick(uint64_t now_ns, bool rotate_by_clock) {
  if (!cur_) {
    last_flush_ns_ = now_ns;
    return;
  }
  if (rotate_by_clock && cfg_.max_file_ns && now_ns >= file_first_ts_ && now_ns - file_first_ts_ >= cfg_.max_file_ns) {
    close_file();
    return;
  }
  if (dirty_ && now_ns - last_flush_ns_ >= cfg_.flush_ns) {
    submit_partial();
    last_flush_ns_ = now_ns;
  }
}

void Chunker::close_file() {
  if (!cur_) return;
  cur_->last = true;
  cur_->committed = file_len_;
  out_.push(cur_);
  cur_ = nullptr;
  dirty_ = false;
  file_seq_++;
}

}  // namespace n2d
