// Chunked body decoding as a byte-driven state machine, so a body split anywhere across reads is
// judged exactly as if it had arrived whole. Chunk data is skipped in runs, never copied; only a
// filtered trailer section is copied, into the caller's scratch buffer.
#include <algorithm>

#include "http/parser.hpp"
#include "http/syntax.hpp"

namespace sluice::http {
namespace {

// 16 hex digits fill a uint64; more (even leading zeros) is refused rather than trusting every
// downstream parser to skip zeros the same way.
constexpr std::size_t kMaxChunkSizeDigits = 16;
// Extensions carry nothing we use; a cap stops a peer streaming an endless chunk line at us.
constexpr std::size_t kMaxChunkExtBytes = 4096;

using detail::CharClass;
using detail::is;
using detail::isWs;

}  // namespace

ChunkedDecoder::Result ChunkedDecoder::failAt(ParseError e, std::size_t at) {
  state_ = State::kError;
  error_ = e;
  return {ParseStatus::kError, e, at};
}

// Framing and routing fields in a trailer would let a recipient that merges trailers into the
// head see a different message than we validated (RFC 9110 §6.5.1).
bool ChunkedDecoder::trailerNameForbidden() const {
  const std::string_view name(trailer_name_, std::min(trailer_name_len_, kTrailerNameCapture));
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
         iequals(name, "host");
}

std::size_t ChunkedDecoder::trailerLimit() const {
  return mode_ == Mode::kFilterTrailers ? std::min(max_trailer_, scratch_.size()) : max_trailer_;
}

void ChunkedDecoder::reset(const Config& config) {
  state_ = State::kSize;
  ext_state_ = ExtState::kBeforeSemi;
  error_ = ParseError::kNone;
  mode_ = config.mode;
  drop_field_ = false;
  remaining_ = 0;
  payload_ = 0;
  max_payload_ = config.max_payload;
  size_digits_ = 0;
  ext_bytes_ = 0;
  trailer_bytes_ = 0;
  trailer_name_len_ = 0;
  scratch_ = config.trailer_scratch;
  scratch_len_ = 0;
  field_start_ = 0;
}

void ChunkedDecoder::reset() {
  reset(Config{});
}

ParseError ChunkedDecoder::stepSize(char c) {
  const int digit = detail::hexValue(c);
  if (digit >= 0) {
    if (++size_digits_ > kMaxChunkSizeDigits) {
      return ParseError::kBadChunkSize;
    }
    remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(digit);
    return ParseError::kNone;
  }
  if (c == '\n') {
    return ParseError::kBareCr;
  }
  if (size_digits_ == 0) {
    return ParseError::kBadChunkSize;
  }
  if (c == '\r') {
    state_ = State::kSizeLf;
  } else if (c == ';' || isWs(c)) {
    state_ = State::kExt;
    ext_state_ = c == ';' ? ExtState::kBeforeName : ExtState::kBeforeSemi;
    ext_bytes_ = 1;
  } else {
    return ParseError::kBadChunkSize;
  }
  return ParseError::kNone;
}

ParseError ChunkedDecoder::stepExt(char c) {
  if (c == '\n') {
    return ParseError::kBareCr;
  }
  if (++ext_bytes_ > kMaxChunkExtBytes) {
    return ParseError::kBadChunkExtension;
  }
  ParseError bad = ParseError::kNone;
  switch (ext_state_) {
    case ExtState::kBeforeSemi:
      // Whitespace after the size is only legal as BWS before ';'.
      if (c == ';') {
        ext_state_ = ExtState::kBeforeName;
      } else if (!isWs(c)) {
        bad = ParseError::kBadChunkSize;
      }
      break;
    case ExtState::kBeforeName:
      if (is(c, CharClass::kTchar)) {
        ext_state_ = ExtState::kName;
      } else if (!isWs(c)) {
        bad = ParseError::kBadChunkExtension;
      }
      break;
    case ExtState::kName:
    case ExtState::kToken:
      if (is(c, CharClass::kTchar)) {
        break;
      }
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c == ';') {
        ext_state_ = ExtState::kBeforeName;
      } else if (c == '=' && ext_state_ == ExtState::kName) {
        ext_state_ = ExtState::kBeforeValue;
      } else if (isWs(c)) {
        ext_state_ = ext_state_ == ExtState::kName ? ExtState::kAfterName : ExtState::kAfterValue;
      } else {
        bad = ParseError::kBadChunkExtension;
      }
      break;
    case ExtState::kAfterName:
      if (c == '=') {
        ext_state_ = ExtState::kBeforeValue;
      } else if (c == ';') {
        ext_state_ = ExtState::kBeforeName;
      } else if (!isWs(c)) {
        bad = ParseError::kBadChunkExtension;
      }
      break;
    case ExtState::kBeforeValue:
      if (c == '"') {
        ext_state_ = ExtState::kQuoted;
      } else if (is(c, CharClass::kTchar)) {
        ext_state_ = ExtState::kToken;
      } else if (!isWs(c)) {
        bad = ParseError::kBadChunkExtension;
      }
      break;
    case ExtState::kQuoted:
      // A CR inside quotes is where lenient parsers disagree on the line end: refuse it.
      if (c == '"') {
        ext_state_ = ExtState::kAfterQuoted;
      } else if (c == '\\') {
        ext_state_ = ExtState::kQuotedEscape;
      } else if (!is(c, CharClass::kQdText)) {
        bad = ParseError::kBadChunkExtension;
      }
      break;
    case ExtState::kQuotedEscape:
      if (is(c, CharClass::kFieldByte)) {
        ext_state_ = ExtState::kQuoted;
      } else {
        bad = ParseError::kBadChunkExtension;
      }
      break;
    case ExtState::kAfterQuoted:
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c == ';') {
        ext_state_ = ExtState::kBeforeName;
      } else if (isWs(c)) {
        ext_state_ = ExtState::kAfterValue;
      } else {
        bad = ParseError::kBadChunkExtension;
      }
      break;
    case ExtState::kAfterValue:
      if (c == ';') {
        ext_state_ = ExtState::kBeforeName;
      } else if (!isWs(c)) {
        bad = ParseError::kBadChunkExtension;
      }
      break;
  }
  return bad;
}

ParseError ChunkedDecoder::stepSizeLf(char c) {
  if (c != '\n') {
    return ParseError::kBareCr;
  }
  size_digits_ = 0;
  if (remaining_ == 0) {
    state_ = State::kTrailerStart;
    trailer_bytes_ = 0;
    scratch_len_ = 0;
    return ParseError::kNone;
  }
  // payload_ never exceeds max_payload_, so the subtraction cannot wrap.
  if (max_payload_ != 0 && remaining_ > max_payload_ - payload_) {
    return ParseError::kBodyTooLarge;
  }
  if (payload_ > UINT64_MAX - remaining_) {
    return ParseError::kBadChunkSize;
  }
  payload_ += remaining_;
  state_ = State::kData;
  return ParseError::kNone;
}

// One byte of the trailer section (every field line and the final CRLF), bounded in total. In
// kFilterTrailers every byte is also copied to the scratch buffer, and a field found to have
// header-only semantics is cut from it again once its line ends.
ParseError ChunkedDecoder::stepTrailer(char c) {
  if (++trailer_bytes_ > trailerLimit()) {
    return ParseError::kBadTrailer;
  }
  const bool filter = mode_ == Mode::kFilterTrailers;
  if (filter) {
    scratch_[scratch_len_++] = c;  // scratch_len_ <= trailer_bytes_ <= scratch_.size()
  }
  switch (state_) {
    case State::kTrailerStart:
      if (c == '\r') {
        state_ = State::kFinalLf;
        return ParseError::kNone;
      }
      if (c == '\n') {
        return ParseError::kBareCr;
      }
      if (!is(c, CharClass::kTchar)) {
        // Includes SP/HTAB: obs-fold is no more acceptable in trailers than in the head.
        return ParseError::kBadTrailer;
      }
      state_ = State::kTrailer;
      trailer_name_[0] = c;
      trailer_name_len_ = 1;
      field_start_ = filter ? scratch_len_ - 1 : 0;
      return ParseError::kNone;
    case State::kTrailer:
      if (trailer_name_len_ != 0) {
        // Still in the name; trailer_name_len_ drops to 0 once the colon is seen.
        if (is(c, CharClass::kTchar)) {
          if (trailer_name_len_ < kTrailerNameCapture) {
            trailer_name_[trailer_name_len_] = c;
          }
          ++trailer_name_len_;
          return ParseError::kNone;
        }
        if (c == ':') {
          if (trailerNameForbidden()) {
            return ParseError::kBadTrailer;
          }
          trailer_name_len_ = 0;
          drop_field_ =
              filter && isHeaderOnlyTrailer(std::string_view(scratch_.data() + field_start_,
                                                             scratch_len_ - 1 - field_start_));
          return ParseError::kNone;
        }
        return c == '\n' ? ParseError::kBareCr : ParseError::kBadTrailer;
      }
      if (c == '\r') {
        state_ = State::kTrailerLf;
      } else if (c == '\n') {
        return ParseError::kBareCr;
      } else if (!is(c, CharClass::kFieldByte)) {
        return ParseError::kBadTrailer;
      }
      return ParseError::kNone;
    default:  // kTrailerLf, kFinalLf
      if (c != '\n') {
        return ParseError::kBareCr;
      }
      if (state_ == State::kFinalLf) {
        state_ = State::kDone;
      } else {
        if (drop_field_) {
          scratch_len_ = field_start_;
          drop_field_ = false;
        }
        state_ = State::kTrailerStart;
      }
      return ParseError::kNone;
  }
}

// `raw_end` receives where the trailer section began in `data` (0 if it had begun before), or
// npos if this call never reached it: kFilterTrailers forwards the raw bytes before it.
ChunkedDecoder::Result ChunkedDecoder::decode(std::string_view data, Spans* out,
                                              std::size_t& raw_end) {
  raw_end = std::string_view::npos;
  if (state_ == State::kError) {
    return {ParseStatus::kError, error_, 0};
  }
  if (state_ == State::kDone) {
    return {ParseStatus::kComplete, ParseError::kNone, 0};
  }
  if (state_ >= State::kTrailerStart) {
    raw_end = 0;
  }
  const bool dechunk = out != nullptr && mode_ == Mode::kDechunk;
  const std::size_t n = data.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = data[i];
    ParseError bad = ParseError::kNone;
    switch (state_) {
      case State::kSize:
        bad = stepSize(c);
        break;
      case State::kExt:
        bad = stepExt(c);
        break;
      case State::kSizeLf:
        bad = stepSizeLf(c);
        if (state_ == State::kTrailerStart) {
          raw_end = i + 1;
        }
        break;
      case State::kData: {
        const std::uint64_t take = std::min<std::uint64_t>(remaining_, n - i);
        if (dechunk) {
          if (out->count == Spans::kCapacity) {
            return {ParseStatus::kIncomplete, ParseError::kNone, i};
          }
          out->part[out->count++] = data.substr(i, static_cast<std::size_t>(take));
        }
        remaining_ -= take;
        i += static_cast<std::size_t>(take);
        if (remaining_ == 0) {
          state_ = State::kDataCr;
        }
        continue;
      }
      case State::kDataCr:
      case State::kDataLf:
        if (c != (state_ == State::kDataCr ? '\r' : '\n')) {
          bad = ParseError::kBadChunkData;
        } else {
          state_ = state_ == State::kDataCr ? State::kDataLf : State::kSize;
        }
        break;
      case State::kTrailerStart:
      case State::kTrailer:
      case State::kTrailerLf:
      case State::kFinalLf:
        bad = stepTrailer(c);
        if (bad == ParseError::kNone && state_ == State::kDone) {
          return {ParseStatus::kComplete, ParseError::kNone, i + 1};
        }
        break;
      case State::kDone:
      case State::kError:
        break;  // unreachable: handled before the loop
    }
    if (bad != ParseError::kNone) {
      return failAt(bad, i);
    }
    ++i;
  }
  return {ParseStatus::kIncomplete, ParseError::kNone, n};
}

ChunkedDecoder::Result ChunkedDecoder::feed(std::string_view data) {
  std::size_t raw_end = 0;
  return decode(data, nullptr, raw_end);
}

ChunkedDecoder::Result ChunkedDecoder::feed(std::string_view data, Spans& out) {
  out.count = 0;
  std::size_t raw_end = 0;
  const Result r = decode(data, &out, raw_end);
  if (r.status == ParseStatus::kError) {
    out.count = 0;
    return r;
  }
  if (mode_ == Mode::kValidate) {
    if (r.consumed != 0) {
      out.part[out.count++] = data.substr(0, r.consumed);
    }
  } else if (mode_ == Mode::kFilterTrailers) {
    const std::size_t raw = std::min(raw_end, r.consumed);
    if (raw != 0) {
      out.part[out.count++] = data.substr(0, raw);
    }
    // The kept trailer section (at least the final CRLF), once, when the body ends here.
    if (r.status == ParseStatus::kComplete && r.consumed != 0) {
      out.part[out.count++] = std::string_view(scratch_.data(), scratch_len_);
    }
  }
  return r;
}

bool isHeaderOnlyTrailer(std::string_view name) {
  static constexpr std::string_view kDropped[] = {
      "authorization",
      "proxy-authorization",
      "proxy-authenticate",
      "www-authenticate",
      "cookie",
      "set-cookie",
      "content-encoding",
      "content-type",
      "content-range",
      "trailer",
      "te",
      "connection",
      "keep-alive",
      "proxy-connection",
      "upgrade",
      "expect",
      "max-forwards",
      "cache-control",
      "pragma",
      "range",
      "forwarded",
      "x-real-ip",
      "via",
      "x-original-url",
      "x-rewrite-url",
      "content-length",
      "transfer-encoding",
      "host",
  };
  if (name.find('_') != std::string_view::npos) {
    return true;
  }
  constexpr std::string_view kIf = "if-";
  constexpr std::string_view kXForwarded = "x-forwarded-";
  if ((name.size() > kIf.size() && iequals(name.substr(0, kIf.size()), kIf)) ||
      (name.size() > kXForwarded.size() &&
       iequals(name.substr(0, kXForwarded.size()), kXForwarded))) {
    return true;
  }
  for (const std::string_view dropped : kDropped) {
    if (iequals(name, dropped)) {
      return true;
    }
  }
  return false;
}

}  // namespace sluice::http
