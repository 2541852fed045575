#include <gtest/gtest.h>

#include "ftdist/core/bytes.h"
#include "ftdist/core/dtype.h"
#include "ftdist/core/error.h"

namespace {

TEST(Bytes, FormatsBinaryAndDecimalUnits) {
  EXPECT_EQ(ftdist::format_gib(80.0 * ftdist::kGiB), "80.00 GiB");
  EXPECT_EQ(ftdist::format_gb(80e9), "80.00 GB");
  EXPECT_EQ(ftdist::format_gib(80e9), "74.51 GiB");  // an "80 GB" datasheet number in GiB
  EXPECT_EQ(ftdist::format_bytes(512), "512 B");
  EXPECT_EQ(ftdist::format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(ftdist::format_bytes(3.0 * ftdist::kMiB), "3.00 MiB");
  EXPECT_EQ(ftdist::format_bytes(116e9, 1), "108.0 GiB");
}

TEST(Bytes, ParsesSizes) {
  EXPECT_EQ(ftdist::parse_bytes("64", "--x"), 64u);
  EXPECT_EQ(ftdist::parse_bytes("8K", "--x"), 8192u);
  EXPECT_EQ(ftdist::parse_bytes("64M", "--x"), 64u << 20);
  EXPECT_EQ(ftdist::parse_bytes("1.5GiB", "--x"), 3u << 29);
  EXPECT_EQ(ftdist::parse_bytes("2GB", "--x"), 2000000000u);
  EXPECT_EQ(ftdist::parse_bytes("1g", "--x"), 1u << 30);
}

TEST(Bytes, RejectsGarbageNamingTheFlag) {
  for (const char* bad : {"", "abc", "12Q", "-3", "1.2.3M"}) {
    try {
      ftdist::parse_bytes(bad, "--max-bytes");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ftdist::Error& e) {
      EXPECT_EQ(e.kind(), ftdist::ErrorKind::BadInput);
      EXPECT_NE(std::string(e.what()).find("--max-bytes"), std::string::npos) << e.what();
    }
  }
}

TEST(Dtype, NamesRoundTrip) {
  for (auto t : {at::kFloat, at::kBFloat16, at::kHalf, at::kLong, at::kInt})
    EXPECT_EQ(ftdist::dtype_from_name(ftdist::dtype_name(t)), t);
  EXPECT_EQ(ftdist::dtype_from_name("bfloat16"), at::kBFloat16);
  EXPECT_THROW(ftdist::dtype_from_name("fp8", "--dtype"), ftdist::Error);
  EXPECT_TRUE(ftdist::is_reduced_float(at::kHalf));
  EXPECT_FALSE(ftdist::is_reduced_float(at::kFloat));
}

TEST(Dtype, HuggingFaceNamesRoundTrip) {
  for (auto t : {at::kFloat, at::kBFloat16, at::kHalf}) {
    at::ScalarType back = at::kLong;
    EXPECT_TRUE(ftdist::hf_dtype_from_name(ftdist::hf_dtype_name(t), &back));
    EXPECT_EQ(back, t);
  }
  EXPECT_STREQ(ftdist::hf_dtype_name(at::kBFloat16), "bfloat16");
  at::ScalarType untouched = at::kLong;
  EXPECT_FALSE(ftdist::hf_dtype_from_name("bf16", &untouched));  // the short names are ftdist's, not config.json's
  EXPECT_EQ(untouched, at::kLong);
  EXPECT_THROW(ftdist::hf_dtype_name(at::kLong), ftdist::Error);
}

}  // namespace
