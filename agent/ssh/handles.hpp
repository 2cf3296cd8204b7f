// RAII owners for the libssh handles the ssh service holds: sessions, channels, events and keys.
// A handle is released by a destructor, never by remembering. (libuv handles and file
// descriptors: common/net/uv_handle.hpp and common/util/unique_fd.hpp.)
#pragma once

#include <memory>
#include <utility>

#include <libssh/libssh.h>
#include <libssh/server.h>


namespace airlock::agent::ssh {

struct SessionFree {
  void operator()(ssh_session s) const { ssh_free(s); }
};
struct BindFree {
  void operator()(ssh_bind b) const { ssh_bind_free(b); }
};
struct EventFree {
  void operator()(ssh_event e) const { ssh_event_free(e); }
};
struct KeyFree {
  void operator()(ssh_key k) const { ssh_key_free(k); }
};
struct ChannelFree {
  void operator()(ssh_channel c) const { ssh_channel_free(c); }
};
struct CStringFree {
  void operator()(char* p) const { ssh_string_free_char(p); }
};
using UniqueSession = std::unique_ptr<ssh_session_struct, SessionFree>;
using UniqueBind = std::unique_ptr<ssh_bind_struct, BindFree>;
using UniqueEvent = std::unique_ptr<ssh_event_struct, EventFree>;
using UniqueKey = std::unique_ptr<ssh_key_struct, KeyFree>;
using UniqueChannel = std::unique_ptr<ssh_channel_struct, ChannelFree>;
using UniqueSshString = std::unique_ptr<char, CStringFree>;

}  // namespace airlock::agent::ssh
