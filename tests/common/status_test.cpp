#include <doctest/doctest.h>

#include "ferry/status.h"

using namespace ferry;

TEST_SUITE("common.status") {
  TEST_CASE("codes say whether a retry can help") {
    CHECK(unavailable("peer down").retryable());
    CHECK(resourceExhausted("full").retryable());
    CHECK(Status(StatusCode::kDeadlineExceeded, "slow").retryable());
    CHECK_FALSE(invalidArgument("bad").retryable());
    CHECK_FALSE(corruption("crc").retryable());
    CHECK(corruption("crc").dataLoss());
    CHECK(Status::ok().isOk());
  }

  TEST_CASE("toString and withContext name the failure") {
    Status s = notFound("no such file").withContext("input tail");
    CHECK(s.code() == StatusCode::kNotFound);
    CHECK(s.toString() == "not found: input tail: no such file");
  }

  TEST_CASE("errnoStatus maps errno to codes") {
    CHECK(errnoStatus("open x", ENOENT).code() == StatusCode::kNotFound);
    CHECK(errnoStatus("open x", EACCES).code() == StatusCode::kPermissionDenied);
    CHECK(errnoStatus("write x", ENOSPC).retryable());
    CHECK(errnoStatus("write x", EIO).code() == StatusCode::kIoError);
  }

  TEST_CASE("Result holds a value or a status") {
    Result<int> good = 7;
    REQUIRE(good.isOk());
    CHECK(*good == 7);
    Result<int> bad = invalidArgument("nope");
    CHECK_FALSE(bad.isOk());
    CHECK(bad.status().message() == "nope");
  }
}
