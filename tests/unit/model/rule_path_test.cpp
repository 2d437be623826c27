// model::normalizeRulePath: rule paths in the spelling requests are normalized to.
#include <gtest/gtest.h>

#include "model/translate.hpp"
#include "support/result.hpp"

namespace sluice::model {
namespace {

std::string rule(std::string_view path,
                 http::EscapedSlashes slashes = http::EscapedSlashes::kReject) {
  Result<std::string> r = normalizeRulePath(path, http::PathOptions{.escaped_slashes = slashes});
  return r ? *r : "error: " + r.error().message();
}

TEST(RulePath, SpelledAsNormalizedRequests) {
  EXPECT_EQ(rule(""), "/");
  EXPECT_EQ(rule("/"), "/");
  EXPECT_EQ(rule("/caf%c3%a9"), "/caf%C3%A9");
  EXPECT_EQ(rule("/%7Euser"), "/~user");
  EXPECT_EQ(rule("/%41pi/"), "/Api/") << "a Prefix rule keeps its trailing slash here";
  EXPECT_EQ(rule("//admin"), "/admin");
  EXPECT_EQ(rule("/a/./b/../c"), "/a/c");
  EXPECT_EQ(rule("/public/..;/manager"), "/manager");
  EXPECT_EQ(rule("/a;v=1/b"), "/a;v=1/b");
  EXPECT_EQ(rule("/foo(/|$)(.*)"), "/foo(/|$)(.*)") << "regex-like paths stay as written";
}

TEST(RulePath, RawUtf8AndSpacesAreWhatClientsSendEncoded) {
  EXPECT_EQ(rule("/café"), "/caf%C3%A9");
  EXPECT_EQ(rule("/a b"), "/a%20b");
  EXPECT_EQ(rule("/%e2%82%ac/€"), "/%E2%82%AC/%E2%82%AC");
}

TEST(RulePath, PathsNoRequestCanCarryAreErrors) {
  EXPECT_EQ(rule("*"), "error: must start with \"/\"");
  EXPECT_EQ(rule("api"), "error: must start with \"/\"");
  EXPECT_EQ(rule("/a?b"),
            "error: contains a control byte, '#' or '?', which no request path can hold");
  EXPECT_EQ(rule("/a#b"),
            "error: contains a control byte, '#' or '?', which no request path can hold");
  EXPECT_EQ(rule(std::string("/a\tb")),
            "error: contains a control byte, '#' or '?', which no request path can hold");
  EXPECT_EQ(rule("/%zz"), "error: has a '%' that is not followed by two hex digits");
  EXPECT_EQ(rule("/a/../.."), "error: climbs above \"/\" with \"..\"");
  EXPECT_EQ(rule("/a%2fb"),
            "error: contains %2F or %5C, which requests may not carry "
            "(--path-escaped-slashes=reject)");
  EXPECT_EQ(rule("/a\\b"),
            "error: contains \\, which requests may not carry (--path-escaped-slashes=reject)");
}

TEST(RulePath, KeptEscapedSlashesStayOpaqueInRules) {
  EXPECT_EQ(rule("/a%2fb", http::EscapedSlashes::kKeep), "/a%2Fb");
  EXPECT_EQ(rule("/a\\b", http::EscapedSlashes::kKeep), "/a\\b");
}

}  // namespace
}  // namespace sluice::model
