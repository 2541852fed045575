// expect_error(body, kind, needle): `body` must throw ftdist::Error of `kind` whose message
// contains `needle`.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "ftdist/core/error.h"

template <typename Body>
void expect_error(Body&& body, ftdist::ErrorKind kind, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "expected an ftdist::Error containing '" << needle << "'";
  } catch (const ftdist::Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message was: " << e.what();
  }
}

template <typename Body>
void expect_bad_input(Body&& body, const std::string& needle) {
  expect_error(std::forward<Body>(body), ftdist::ErrorKind::BadInput, needle);
}
