#include "common/relay/access.hpp"

namespace airlock::relay {

Status may_reach(const token::Claims& user, const WorkspaceRef& workspace) {
  switch (user.role) {
    case token::Role::owner:
      return Ok{};
    case token::Role::member:
      if (!user.sub.empty() && user.sub == workspace.owner) return Ok{};
      return make_error("member " + user.sub + " may not reach " + workspace.owner + "'s workspace " +
                        workspace.name);
    default:
      return make_error("role " + std::string(token::role_name(user.role)) + " may not reach workspaces");
  }
}

Status may_list_workspaces(const token::Claims& user) {
  if (user.role == token::Role::owner || user.role == token::Role::template_admin) return Ok{};
  return make_error("role " + std::string(token::role_name(user.role)) +
                    " may not list workspaces (owner or template-admin only)");
}

Status may_read_workspace(const token::Claims& user, const WorkspaceRef& workspace) {
  switch (user.role) {
    case token::Role::owner:
    case token::Role::template_admin:
    case token::Role::auditor:
      return Ok{};
    case token::Role::member:
      if (!user.sub.empty() && user.sub == workspace.owner) return Ok{};
      return make_error("member " + user.sub + " may not read " + workspace.owner + "'s workspace " + workspace.name);
    default:
      return make_error("role " + std::string(token::role_name(user.role)) + " may not read workspace status");
  }
}

}  // namespace airlock::relay
