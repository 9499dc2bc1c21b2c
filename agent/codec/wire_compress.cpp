#include "agent/codec/wire_compress.h"

#include <zlib.h>
#include <zstd.h>

namespace ferry {

bool parseWireEncoding(std::string_view text, WireEncoding* out) {
  if (text == "zstd") {
    *out = WireEncoding::kZstd;
  } else if (text == "gzip") {
    *out = WireEncoding::kGzip;
  } else if (text == "none" || text == "identity" || text.empty()) {
    *out = WireEncoding::kIdentity;
  } else {
    return false;
  }
  return true;
}

std::string_view wireEncodingName(WireEncoding encoding) {
  switch (encoding) {
    case WireEncoding::kZstd: return "zstd";
    case WireEncoding::kGzip: return "gzip";
    case WireEncoding::kIdentity: break;
  }
  return "identity";
}

struct WireCompressor::Impl {
  ZSTD_CCtx* zstd = nullptr;
  ~Impl() { ZSTD_freeCCtx(zstd); }
};

WireCompressor::WireCompressor(WireEncoding encoding, int level)
    : encoding_(encoding), level_(level), impl_(std::make_unique<Impl>()) {
  if (encoding_ == WireEncoding::kZstd) {
    if (level_ <= 0) level_ = 3;
    impl_->zstd = ZSTD_createCCtx();
  } else if (encoding_ == WireEncoding::kGzip && (level_ <= 0 || level_ > 9)) {
    level_ = 6;
  }
}

WireCompressor::~WireCompressor() = default;

Status WireCompressor::compress(std::string_view in, std::string* out) {
  switch (encoding_) {
    case WireEncoding::kIdentity:
      out->assign(in);
      return Status::ok();
    case WireEncoding::kZstd: {
      if (impl_->zstd == nullptr) return internalError("zstd: cannot allocate a context");
      out->resize(ZSTD_compressBound(in.size()));
      size_t n = ZSTD_compressCCtx(impl_->zstd, out->data(), out->size(), in.data(), in.size(), level_);
      if (ZSTD_isError(n)) return internalError(std::string("zstd: ") + ZSTD_getErrorName(n));
      out->resize(n);
      return Status::ok();
    }
    case WireEncoding::kGzip: {
      z_stream zs{};
      // 15 + 16: a gzip wrapper rather than zlib's.
      if (deflateInit2(&zs, level_, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return internalError("gzip: deflateInit2 failed");
      }
      out->resize(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      zs.avail_in = static_cast<uInt>(in.size());
      zs.next_out = reinterpret_cast<Bytef*>(out->data());
      zs.avail_out = static_cast<uInt>(out->size());
      int rc = deflate(&zs, Z_FINISH);
      size_t n = zs.total_out;
      deflateEnd(&zs);
      if (rc != Z_STREAM_END) return internalError("gzip: deflate did not finish");
      out->resize(n);
      return Status::ok();
    }
  }
  return internalError("unknown wire encoding");
}

Status decompressWire(WireEncoding encoding, std::string_view in, std::string* out, size_t max_out) {
  out->clear();
  switch (encoding) {
    case WireEncoding::kIdentity:
      if (in.size() > max_out) return invalidArgument("body larger than " + std::to_string(max_out) + " bytes");
      out->assign(in);
      return Status::ok();
    case WireEncoding::kZstd: {
      ZSTD_DStream* ds = ZSTD_createDStream();
      if (ds == nullptr) return internalError("zstd: cannot allocate a context");
      ZSTD_inBuffer input{in.data(), in.size(), 0};
      std::string chunk(ZSTD_DStreamOutSize(), '\0');
      // ZSTD_decompressStream returns 0 exactly when a frame is fully decoded and flushed;
      // it continues into a following frame by itself, and rejects trailing garbage. The
      // decoder holds nothing more once all input is consumed and it left room in `chunk`.
      size_t last = 1;
      for (;;) {
        ZSTD_outBuffer output{chunk.data(), chunk.size(), 0};
        last = ZSTD_decompressStream(ds, &output, &input);
        if (ZSTD_isError(last)) {
          std::string why = ZSTD_getErrorName(last);
          ZSTD_freeDStream(ds);
          return corruption("zstd body does not decode: " + why);
        }
        if (out->size() + output.pos > max_out) {
          ZSTD_freeDStream(ds);
          return invalidArgument("decoded body larger than " + std::to_string(max_out) + " bytes");
        }
        out->append(chunk.data(), output.pos);
        if (input.pos == input.size && output.pos < output.size) break;
      }
      ZSTD_freeDStream(ds);
      if (last != 0) return corruption("zstd body is truncated");
      return Status::ok();
    }
    case WireEncoding::kGzip: {
      z_stream zs{};
      if (inflateInit2(&zs, 15 + 32) != Z_OK) return internalError("gzip: inflateInit2 failed");
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      zs.avail_in = static_cast<uInt>(in.size());
      std::string chunk(64 * 1024, '\0');
      int rc = Z_OK;
      while (rc != Z_STREAM_END) {
        zs.next_out = reinterpret_cast<Bytef*>(chunk.data());
        zs.avail_out = static_cast<uInt>(chunk.size());
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
          inflateEnd(&zs);
          return corruption("gzip body does not decode");
        }
        size_t got = chunk.size() - zs.avail_out;
        if (out->size() + got > max_out) {
          inflateEnd(&zs);
          return invalidArgument("decoded body larger than " + std::to_string(max_out) + " bytes");
        }
        out->append(chunk.data(), got);
        if (rc == Z_OK && got == 0 && zs.avail_in == 0) {
          inflateEnd(&zs);
          return corruption("gzip body is truncated");
        }
      }
      inflateEnd(&zs);
      return Status::ok();
    }
  }
  return internalError("unknown wire encoding");
}

}  // namespace ferry
