// Who may reach which workspace through the relay, and who may list them (DESIGN.md "Identity and
// authorisation"): owner reaches every workspace, member only the ones they own, every other role
// none. Pure rules, so the coordinator and the tests share them.
#pragma once

#include <string>

#include "common/token/token.hpp"
#include "common/util/result.hpp"

namespace airlock::relay {

// A workspace as its agent's token describes it.
struct WorkspaceRef {
  std::string id;
  std::string name;
  std::string owner;  // the owning user's id (a token's sub)
};

// Ok, or why not: "role auditor may not reach workspaces",
// "member alice may not reach bob's workspace ws2".
Status may_reach(const token::Claims& user, const WorkspaceRef& workspace);

// The HTTP API's workspace list: owner and template-admin only.
Status may_list_workspaces(const token::Claims& user);

// One workspace's status document (GET /api/v2/workspaces/{name}): owner, template-admin and
// auditor read every workspace's; a member reads only their own.
Status may_read_workspace(const token::Claims& user, const WorkspaceRef& workspace);

}  // namespace airlock::relay
