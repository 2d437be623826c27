// Chunked body validation as a byte-driven state machine, so a body split anywhere across reads
// is judged exactly as if it had arrived whole.
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

void ChunkedDecoder::reset() {
  state_ = State::kSize;
  ext_state_ = ExtState::kBeforeSemi;
  error_ = ParseError::kNone;
  remaining_ = 0;
  payload_ = 0;
  size_digits_ = 0;
  ext_bytes_ = 0;
  trailer_bytes_ = 0;
  trailer_name_len_ = 0;
}

ChunkedDecoder::Result ChunkedDecoder::feed(std::string_view data) {
  if (state_ == State::kError) {
    return {ParseStatus::kError, error_, 0};
  }
  if (state_ == State::kDone) {
    return {ParseStatus::kComplete, ParseError::kNone, 0};
  }

  const std::size_t n = data.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = data[i];
    switch (state_) {
      case State::kSize: {
        const int digit = detail::hexValue(c);
        if (digit >= 0) {
          if (++size_digits_ > kMaxChunkSizeDigits) {
            return failAt(ParseError::kBadChunkSize, i);
          }
          remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(digit);
          break;
        }
        if (c == '\n') {
          return failAt(ParseError::kBareCr, i);
        }
        if (size_digits_ == 0) {
          return failAt(ParseError::kBadChunkSize, i);
        }
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ';' || isWs(c)) {
          state_ = State::kExt;
          ext_state_ = c == ';' ? ExtState::kBeforeName : ExtState::kBeforeSemi;
          ext_bytes_ = 1;
        } else {
          return failAt(ParseError::kBadChunkSize, i);
        }
        break;
      }

      case State::kExt: {
        if (c == '\n') {
          return failAt(ParseError::kBareCr, i);
        }
        if (++ext_bytes_ > kMaxChunkExtBytes) {
          return failAt(ParseError::kBadChunkExtension, i);
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
              ext_state_ =
                  ext_state_ == ExtState::kName ? ExtState::kAfterName : ExtState::kAfterValue;
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
        if (bad != ParseError::kNone) {
          return failAt(bad, i);
        }
        break;
      }

      case State::kSizeLf:
        if (c != '\n') {
          return failAt(ParseError::kBareCr, i);
        }
        size_digits_ = 0;
        if (remaining_ == 0) {
          state_ = State::kTrailerStart;
          trailer_bytes_ = 0;
        } else {
          if (payload_ > UINT64_MAX - remaining_) {
            return failAt(ParseError::kBadChunkSize, i);
          }
          payload_ += remaining_;
          state_ = State::kData;
        }
        break;

      case State::kData: {
        const std::uint64_t take = std::min<std::uint64_t>(remaining_, n - i);
        remaining_ -= take;
        i += static_cast<std::size_t>(take);
        if (remaining_ == 0) {
          state_ = State::kDataCr;
        }
        continue;
      }

      case State::kDataCr:
        if (c != '\r') {
          return failAt(ParseError::kBadChunkData, i);
        }
        state_ = State::kDataLf;
        break;

      case State::kDataLf:
        if (c != '\n') {
          return failAt(ParseError::kBadChunkData, i);
        }
        state_ = State::kSize;
        break;

      case State::kTrailerStart:
      case State::kTrailer:
      case State::kTrailerLf:
      case State::kFinalLf:
        if (++trailer_bytes_ > max_trailer_) {
          return failAt(ParseError::kBadTrailer, i);
        }
        if (state_ == State::kTrailerStart) {
          if (c == '\r') {
            state_ = State::kFinalLf;
          } else if (c == '\n') {
            return failAt(ParseError::kBareCr, i);
          } else if (is(c, CharClass::kTchar)) {
            state_ = State::kTrailer;
            trailer_name_[0] = c;
            trailer_name_len_ = 1;
          } else {
            // Includes SP/HTAB: obs-fold is no more acceptable in trailers than in the head.
            return failAt(ParseError::kBadTrailer, i);
          }
        } else if (state_ == State::kTrailer) {
          if (trailer_name_len_ != 0) {
            // Still in the name; trailer_name_len_ drops to 0 once the colon is seen.
            if (is(c, CharClass::kTchar)) {
              if (trailer_name_len_ < kTrailerNameCapture) {
                trailer_name_[trailer_name_len_] = c;
              }
              ++trailer_name_len_;
            } else if (c == ':') {
              if (trailerNameForbidden()) {
                return failAt(ParseError::kBadTrailer, i);
              }
              trailer_name_len_ = 0;
            } else if (c == '\n') {
              return failAt(ParseError::kBareCr, i);
            } else {
              return failAt(ParseError::kBadTrailer, i);
            }
          } else if (c == '\r') {
            state_ = State::kTrailerLf;
          } else if (c == '\n') {
            return failAt(ParseError::kBareCr, i);
          } else if (!is(c, CharClass::kFieldByte)) {
            return failAt(ParseError::kBadTrailer, i);
          }
        } else {
          if (c != '\n') {
            return failAt(ParseError::kBareCr, i);
          }
          if (state_ == State::kFinalLf) {
            state_ = State::kDone;
            return {ParseStatus::kComplete, ParseError::kNone, i + 1};
          }
          state_ = State::kTrailerStart;
        }
        break;

      case State::kDone:
      case State::kError:
        break;  // unreachable: handled before the loop
    }
    ++i;
  }
  return {ParseStatus::kIncomplete, ParseError::kNone, n};
}

}  // namespace sluice::http
