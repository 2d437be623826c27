#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "k8s/manifest.hpp"
#include "support/result.hpp"

namespace sluice::k8s {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// ---- parseManifest ----

TEST(ParseManifest, PlainScalarsResolveLikeKubectlQuotedStayStrings) {
  ParsedManifest m = parseManifest(R"(
a: 80
b: "80"
c: -3
d: 0x50
e: 080
f: true
g: "true"
h: True
i: null
j: ~
k:
l: 1.5
m: !!str 7
n: |
  text
o: 99999999999999999999
)",
                                   ManifestFormat::kYaml)
                         .value();
  ASSERT_EQ(m.objects.size(), 1u);
  const json::object& o = m.objects[0].as_object();
  EXPECT_EQ(o.at("a"), json::value(80));
  EXPECT_EQ(o.at("b"), json::value("80"));
  EXPECT_EQ(o.at("c"), json::value(-3));
  EXPECT_EQ(o.at("d"), json::value("0x50"));
  EXPECT_EQ(o.at("e"), json::value("080"));
  EXPECT_EQ(o.at("f"), json::value(true));
  EXPECT_EQ(o.at("g"), json::value("true"));
  EXPECT_EQ(o.at("h"), json::value("True"));
  EXPECT_TRUE(o.at("i").is_null());
  EXPECT_TRUE(o.at("j").is_null());
  EXPECT_TRUE(o.at("k").is_null());
  EXPECT_EQ(o.at("l"), json::value("1.5"));
  EXPECT_EQ(o.at("m"), json::value("7"));
  EXPECT_EQ(o.at("n"), json::value("text\n"));
  EXPECT_EQ(o.at("o"), json::value("99999999999999999999"));
}

TEST(ParseManifest, MultiDocumentListsAndNonObjects) {
  ParsedManifest m = parseManifest(R"(---
kind: A
---
---
just a scalar
---
- a
- sequence
---
apiVersion: v1
kind: List
items:
- kind: B
- 7
- kind: C
---
kind: D
)",
                                   ManifestFormat::kYaml)
                         .value();
  std::vector<std::string> kinds;
  for (const auto& v : m.objects) {
    kinds.emplace_back(v.as_object().at("kind").as_string());
  }
  EXPECT_THAT(kinds, ElementsAre("A", "B", "C", "D"));
  EXPECT_THAT(m.problems, ElementsAre(HasSubstr("document 3: not a mapping"),
                                      HasSubstr("document 4: not a mapping"),
                                      "document 5: items[1]: not a mapping"));
}

TEST(ParseManifest, TypedListsAreExpandedToo) {
  ParsedManifest m = parseManifest(R"({"kind":"IngressList","apiVersion":"networking.k8s.io/v1",
      "items":[{"kind":"Ingress"}]})",
                                   ManifestFormat::kJson)
                         .value();
  ASSERT_EQ(m.objects.size(), 1u);
  EXPECT_EQ(m.objects[0].as_object().at("kind"), json::value("Ingress"));
}

TEST(ParseManifest, Errors) {
  EXPECT_EQ(test::errorOf(parseManifest("a: [1\n", ManifestFormat::kYaml)),
            "line 2, column 1: end of sequence flow not found");
  EXPECT_EQ(test::errorOf(parseManifest("a: 1\na: 2\n", ManifestFormat::kYaml)),
            "document 1: line 2: duplicate key \"a\"");
  EXPECT_EQ(test::errorOf(parseManifest("? [a]\n: 1\n", ManifestFormat::kYaml)),
            "document 1: line 1: mapping keys must be strings");
  EXPECT_NE(test::errorOf(parseManifest("{\"a\": }", ManifestFormat::kJson)), "");
  // A bad document anywhere fails the whole text: nothing half-parsed is returned.
  EXPECT_NE(test::errorOf(parseManifest("kind: A\n---\nb: 1\nb: 2\n", ManifestFormat::kYaml)), "");
}

TEST(ParseManifest, LimitsStopHostileInput) {
  std::string deep;
  for (int i = 0; i < 100; ++i) {
    deep += "[";
  }
  EXPECT_THAT(test::errorOf(parseManifest("a: " + deep, ManifestFormat::kYaml)), ::testing::Ne(""));
  EXPECT_NE(test::errorOf(parseManifest(deep, ManifestFormat::kJson)), "");

  // Billion laughs: nine levels of ten aliases each would expand to 10^9 nodes.
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) {
      bomb += (j ? ", " : "") + prev;
    }
    bomb += "]\n";
  }
  EXPECT_THAT(test::errorOf(parseManifest(bomb, ManifestFormat::kYaml)),
              HasSubstr("aliases expanded"));
}

// ---- ManifestSource ----

constexpr const char* kServiceA = R"(apiVersion: v1
kind: Service
metadata: {name: a, namespace: t}
spec: {ports: [{port: 80}]}
)";

std::string service(const std::string& name, int port) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         ", namespace: t}\nspec: {ports: [{port: " + std::to_string(port) + "}]}\n";
}

int portOf(const Store& store, const std::string& key) {
  auto it = store.services().find(key);
  return it == store.services().end() ? -1 : it->second.ports.at(0).port;
}

class ManifestSourceTest : public ::testing::Test {
protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("sluice-manifest-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Rewrites in place (same inode), like most editors' "save" and `kubectl ... > file`.
  void write(const fs::path& name, const std::string& text) {
    std::ofstream out(dir_ / name, std::ios::trunc | std::ios::binary);
    out << text;
  }

  fs::path dir_;
};

TEST_F(ManifestSourceTest, FirstPollReportsEvenWhenEmpty) {
  ManifestSource source(dir_);
  EXPECT_TRUE(source.poll());
  EXPECT_TRUE(source.store().empty());
  EXPECT_THAT(source.warnings(), IsEmpty());
  EXPECT_FALSE(source.poll());
}

TEST_F(ManifestSourceTest, AddEditDelete) {
  ManifestSource source(dir_);
  EXPECT_TRUE(source.poll());

  write("a.yaml", kServiceA);
  write("b.yml", service("b", 81) + "---\n" + service("c", 82));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(source.store().size(), 3u);
  EXPECT_EQ(portOf(source.store(), "t/a"), 80);
  EXPECT_EQ(portOf(source.store(), "t/c"), 82);
  EXPECT_FALSE(source.poll());

  write("b.yml", service("b", 91));  // same size as before would not matter: content is hashed
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/b"), 91);
  EXPECT_EQ(portOf(source.store(), "t/c"), -1);

  fs::remove(dir_ / "a.yaml");
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), -1);
  EXPECT_EQ(source.store().size(), 1u);
  EXPECT_THAT(source.warnings(), IsEmpty());
}

TEST_F(ManifestSourceTest, SameSizeSameInodeRewriteIsSeen) {
  ManifestSource source(dir_);
  write("a.yaml", service("a", 80));
  EXPECT_TRUE(source.poll());
  write("a.yaml", service("a", 81));  // within the mtime granularity, same size and inode
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 81);
}

TEST_F(ManifestSourceTest, TouchWithoutChangeIsNotAChange) {
  ManifestSource source(dir_);
  write("a.yaml", kServiceA);
  EXPECT_TRUE(source.poll());
  write("a.yaml", kServiceA);
  fs::last_write_time(dir_ / "a.yaml", fs::file_time_type::clock::now());
  EXPECT_FALSE(source.poll());
}

TEST_F(ManifestSourceTest, InvalidYamlKeepsLastGoodVersion) {
  ManifestSource source(dir_);
  write("a.yaml", kServiceA);
  EXPECT_TRUE(source.poll());

  write("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a\n");
  EXPECT_FALSE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 80);
  ASSERT_EQ(source.warnings().size(), 1u);
  EXPECT_EQ(source.warnings()[0].object, "a.yaml");
  EXPECT_THAT(source.warnings()[0].message,
              AllOf(HasSubstr("invalid YAML: line"), HasSubstr("keeping last good version")));
  EXPECT_FALSE(source.poll());  // still broken, still warned
  EXPECT_EQ(source.warnings().size(), 1u);

  write("a.yaml", service("a", 8080));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 8080);
  EXPECT_THAT(source.warnings(), IsEmpty());
}

TEST_F(ManifestSourceTest, InvalidYamlInNewFileIsIgnored) {
  ManifestSource source(dir_);
  write("a.yaml", "a: [\n");
  write("b.json", "{\"kind\": ");
  EXPECT_TRUE(source.poll());
  EXPECT_TRUE(source.store().empty());
  ASSERT_EQ(source.warnings().size(), 2u);
  EXPECT_THAT(source.warnings()[0].message,
              AllOf(HasSubstr("invalid YAML"), HasSubstr("; ignored")));
  EXPECT_THAT(source.warnings()[1].message,
              AllOf(HasSubstr("invalid JSON"), HasSubstr("; ignored")));
}

TEST_F(ManifestSourceTest, InvalidObjectKeepsLastGoodVersionFromThatFile) {
  ManifestSource source(dir_);
  write("a.yaml", service("a", 80) + "---\n" + service("b", 81));
  EXPECT_TRUE(source.poll());

  // a breaks (keeps its last version), b changes, c is new and broken (skipped).
  write("a.yaml", service("a", 0) + "---\n" + service("b", 82) + "---\n" + service("c", 70000));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 80);
  EXPECT_EQ(portOf(source.store(), "t/b"), 82);
  EXPECT_EQ(portOf(source.store(), "t/c"), -1);
  EXPECT_THAT(
      source.warnings(),
      ElementsAre(
          AllOf(Field(&Problem::object, "a.yaml"),
                Field(&Problem::message,
                      "Service t/a: spec.ports[0].port: must be between 1 and 65535, got 0; "
                      "keeping last good version")),
          Field(&Problem::message,
                "Service t/c: spec.ports[0].port: must be between 1 and 65535, got 70000; "
                "skipped")));

  // The kept version survives further edits of the same file as long as the object stays bad.
  write("a.yaml", service("a", 0) + "---\n" + service("b", 83));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 80);

  // Removing the object from the file removes it.
  write("a.yaml", service("b", 83));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), -1);
  EXPECT_THAT(source.warnings(), IsEmpty());
}

TEST_F(ManifestSourceTest, DuplicateAcrossFilesFirstFileWins) {
  ManifestSource source(dir_);
  write("b.yaml", service("a", 82));
  write("a.yaml", service("a", 81));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 81);
  EXPECT_THAT(source.warnings(),
              ElementsAre(AllOf(
                  Field(&Problem::object, "Service t/a"),
                  Field(&Problem::message, "defined in both a.yaml and b.yaml; using a.yaml"))));
  fs::remove(dir_ / "a.yaml");
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 82);
  EXPECT_THAT(source.warnings(), IsEmpty());
}

TEST_F(ManifestSourceTest, DuplicateInOneFileFirstWins) {
  ManifestSource source(dir_);
  write("a.yaml", service("a", 81) + "---\n" + service("a", 82));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 81);
  EXPECT_THAT(source.warnings(),
              ElementsAre(Field(&Problem::message,
                                "Service t/a is defined more than once in this file; using the "
                                "first")));
}

TEST_F(ManifestSourceTest, IgnoresHiddenTempOtherAndDirectories) {
  ManifestSource source(dir_);
  write(".hidden.yaml", service("h", 1));
  write(".#a.yaml", service("i", 1));
  write("#a.yaml#", service("j", 1));
  write("a.yaml~", service("k", 1));
  write("a.yaml.swp", service("l", 1));
  write("notes.txt", "not yaml: [");
  fs::create_directories(dir_ / "sub.yaml");
  fs::create_directories(dir_ / "nested");
  std::ofstream(dir_ / "nested" / "x.yaml") << service("m", 1);
  write("real.json", R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}})");
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(source.store().size(), 1u);
  EXPECT_TRUE(source.store().secrets().contains("default/s"));
  EXPECT_THAT(source.warnings(), IsEmpty());
}

TEST_F(ManifestSourceTest, ConfigMapVolumeLayoutFollowsSymlinks) {
  // kubelet's atomic writer: files link through ..data, which is swapped to a new timestamped
  // directory on every update.
  fs::create_directories(dir_ / "..2024_01_01_00_00_00.1");
  std::ofstream(dir_ / "..2024_01_01_00_00_00.1" / "svc.yaml") << service("a", 80);
  fs::create_directory_symlink("..2024_01_01_00_00_00.1", dir_ / "..data");
  fs::create_symlink("..data/svc.yaml", dir_ / "svc.yaml");
  ManifestSource source(dir_);
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 80);
  EXPECT_EQ(source.store().size(), 1u);

  fs::create_directories(dir_ / "..2024_01_01_00_01_00.2");
  std::ofstream(dir_ / "..2024_01_01_00_01_00.2" / "svc.yaml") << service("a", 81);
  fs::create_directory_symlink("..2024_01_01_00_01_00.2", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  fs::remove_all(dir_ / "..2024_01_01_00_00_00.1");
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 81);

  fs::create_symlink("..data/missing.yaml", dir_ / "dangling.yaml");
  EXPECT_FALSE(source.poll());
  EXPECT_THAT(source.warnings(), IsEmpty());
}

TEST_F(ManifestSourceTest, NonObjectsAndUnsupportedKindsWarn) {
  ManifestSource source(dir_);
  write("a.yaml", "just text\n---\n" + service("a", 80) +
                      "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(source.store().size(), 1u);
  EXPECT_THAT(source.warnings(),
              ElementsAre(Field(&Problem::message, HasSubstr("document 1: not a mapping")),
                          Field(&Problem::message, "unsupported kind Deployment; skipped")));
}

TEST_F(ManifestSourceTest, MissingDirectoryWarnsAndRecovers) {
  ManifestSource source(dir_ / "later");
  EXPECT_NO_THROW(EXPECT_FALSE(source.poll()));
  ASSERT_EQ(source.warnings().size(), 1u);
  EXPECT_THAT(source.warnings()[0].message, HasSubstr("cannot read directory"));
  fs::create_directories(dir_ / "later");
  std::ofstream(dir_ / "later" / "a.yaml") << kServiceA;
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(source.store().size(), 1u);
  EXPECT_THAT(source.warnings(), IsEmpty());

  // A directory that vanishes keeps the last good state rather than deleting everything.
  fs::remove_all(dir_ / "later");
  EXPECT_FALSE(source.poll());
  EXPECT_EQ(source.store().size(), 1u);
  EXPECT_EQ(source.warnings().size(), 1u);
}

TEST_F(ManifestSourceTest, UnreadableFileKeepsLastGoodVersion) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads files regardless of permissions";
  }
  ManifestSource source(dir_);
  write("a.yaml", kServiceA);
  EXPECT_TRUE(source.poll());
  fs::permissions(dir_ / "a.yaml", fs::perms::none);
  EXPECT_FALSE(source.poll());
  EXPECT_EQ(source.store().size(), 1u);
  ASSERT_EQ(source.warnings().size(), 1u);
  EXPECT_THAT(source.warnings()[0].message,
              AllOf(HasSubstr("cannot read"), HasSubstr("keeping last good version")));
}

TEST_F(ManifestSourceTest, OversizedFileKeepsLastGoodVersion) {
  ManifestSource source(dir_);
  write("a.yaml", kServiceA);
  EXPECT_TRUE(source.poll());
  write("a.yaml", std::string(kServiceA) + "# " + std::string(17 * 1024 * 1024, 'x') + "\n");
  EXPECT_FALSE(source.poll());
  EXPECT_EQ(source.store().size(), 1u);
  ASSERT_EQ(source.warnings().size(), 1u);
  EXPECT_EQ(source.warnings()[0].message,
            "cannot read: larger than 16 MiB; keeping last good version");
  write("a.yaml", service("a", 81));
  EXPECT_TRUE(source.poll());
  EXPECT_EQ(portOf(source.store(), "t/a"), 81);
}

TEST(ManifestSourceFixtures, KubectlOutputDirectoryLoadsCleanly) {
  ManifestSource source(fs::path(SLUICE_TESTDATA_DIR) / "k8s");
  EXPECT_TRUE(source.poll());
  EXPECT_THAT(source.warnings(), IsEmpty());
  const Store& s = source.store();
  EXPECT_EQ(s.ingresses().size(), 2u);
  EXPECT_EQ(s.ingressClasses().size(), 1u);
  EXPECT_EQ(s.services().size(), 2u);
  EXPECT_EQ(s.endpointSlices().size(), 3u);
  EXPECT_EQ(s.secrets().size(), 1u);
  EXPECT_TRUE(s.ingresses().contains("shop/admin"));
  EXPECT_TRUE(s.endpointSlices().contains("shop/web-2xv9d"));
  EXPECT_FALSE(source.poll());
}

}  // namespace
}  // namespace sluice::k8s
