#include <doctest/doctest.h>

#include "common/relay/access.hpp"

using namespace airlock;
using namespace airlock::relay;

namespace {
token::Claims user(std::string sub, token::Role role) {
  token::Claims c;
  c.sub = std::move(sub);
  c.role = role;
  return c;
}
}  // namespace

TEST_CASE("owner reaches every workspace, member only their own, other roles none") {
  WorkspaceRef bobs{"ws2", "dev", "bob"};
  CHECK(may_reach(user("root", token::Role::owner), bobs).ok());
  CHECK(may_reach(user("bob", token::Role::member), bobs).ok());

  auto alice = may_reach(user("alice", token::Role::member), bobs);
  REQUIRE_FALSE(alice.ok());
  CHECK(alice.error().message == "member alice may not reach bob's workspace dev");

  for (auto role : {token::Role::auditor, token::Role::agent, token::Role::gateway, token::Role::template_admin}) {
    auto r = may_reach(user("bob", role), bobs);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "role " + std::string(token::role_name(role)) + " may not reach workspaces");
  }
}

TEST_CASE("only owner and template-admin list workspaces") {
  CHECK(may_list_workspaces(user("a", token::Role::owner)).ok());
  CHECK(may_list_workspaces(user("a", token::Role::template_admin)).ok());
  CHECK_FALSE(may_list_workspaces(user("a", token::Role::member)).ok());
  CHECK_FALSE(may_list_workspaces(user("a", token::Role::auditor)).ok());
}
