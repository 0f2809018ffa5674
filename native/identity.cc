// Who is on the other end of a Unix socket, and who a user is: the facts the
// extraction service decides on. Node has no SO_PEERCRED and no
// getgrouplist, and reading /etc/group by hand would miss NSS sources (LDAP,
// sssd), so these come from libc.
#include "identity.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace n2d {
namespace {

// Buffer size for the *_r lookups; grown on ERANGE.
std::vector<char> LookupBuffer() {
  long n = sysconf(_SC_GETPW_R_SIZE_MAX);
  return std::vector<char>(n > 0 ? size_t(n) : 16384);
}

// The first argument, a number; false (with a TypeError thrown) otherwise.
bool NumberArg(const Napi::CallbackInfo& info, const char* usage, int64_t* out) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
    return false;
  }
  *out = info[0].As<Napi::Number>().Int64Value();
  return true;
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd;
  if (!NumberArg(info, "peerCredentials(fd)", &fd)) return env.Undefined();
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(int(fd), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", double(cred.pid));
  o.Set("uid", double(cred.uid));
  o.Set("gid", double(cred.gid));
  return o;
}

Napi::Value UserName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t uid;
  if (!NumberArg(info, "userName(uid)", &uid)) return env.Undefined();
  std::vector<char> buf = LookupBuffer();
  struct passwd pw {};
  struct passwd* found = nullptr;
  int err;
  while ((err = getpwuid_r(uid_t(uid), &pw, buf.data(), buf.size(), &found)) == ERANGE) buf.resize(buf.size() * 2);
  if (err != 0 || !found) return env.Null();
  return Napi::String::New(env, found->pw_name);
}

// The names of every group of a user (primary and supplementary), or null
// for a user the system does not know.
Napi::Value UserGroups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "userGroups(name)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.find('\0') != std::string::npos) return env.Null();
  std::vector<char> buf = LookupBuffer();
  struct passwd pw {};
  struct passwd* found = nullptr;
  int err;
  while ((err = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE) buf.resize(buf.size() * 2);
  if (err != 0 || !found) return env.Null();
  gid_t primary = found->pw_gid;

  int count = 32;
  std::vector<gid_t> gids(size_t(count), 0);
  // On -1, glibc sets count to the number of groups the user has.
  while (getgrouplist(name.c_str(), primary, gids.data(), &count) < 0) gids.resize(size_t(count));

  Napi::Array names = Napi::Array::New(env);
  uint32_t n = 0;
  for (int i = 0; i < count; i++) {
    struct group gr {};
    struct group* g = nullptr;
    while ((err = getgrgid_r(gids[size_t(i)], &gr, buf.data(), buf.size(), &g)) == ERANGE) buf.resize(buf.size() * 2);
    if (err == 0 && g) names.Set(n++, Napi::String::New(env, g->gr_name));
  }
  return names;
}

}  // namespace

void DefineIdentity(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
  exports.Set("userName", Napi::Function::New(env, UserName));
  exports.Set("userGroups", Napi::Function::New(env, UserGroups));
}

}  // namespace n2d
