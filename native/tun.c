/*
 * ftcp_tun: the thin N-API layer over the Linux TUN device.
 *
 * Syscalls and constants only: open/attach a TUN, make it persistent, non-blocking batch
 * reads driven by a libuv poll handle (one JS callback per batch), single and batch writes, close,
 * and a CLOCK_REALTIME reading that matches packet-capture timestamps. Every
 * failure throws an Error whose `code` is the errno name (EPERM, EBUSY, ...).
 * Buffers are owned by JavaScript; policy lives in TypeScript (src/tun/).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, "EINTERNAL", "N-API call failed: " #call);  \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(err), name ? name : "?");
  napi_throw_error(env, name ? name : "EUNKNOWN", msg);
  return NULL;
}

/* Like throw_errno, and the error carries `index`: the packet of a batch that failed
 * (the ones before it were written). */
static napi_value throw_errno_at(napi_env env, const char *what, int err, int32_t index) {
  char msg[256];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s (%s) at packet %d", what, strerror(err), name ? name : "?", index);
  napi_value code, text, error, idx;
  if (napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_error(env, code, text, &error) != napi_ok || napi_create_int32(env, index, &idx) != napi_ok ||
      napi_set_named_property(env, error, "index", idx) != napi_ok) {
    napi_throw_error(env, name ? name : "EUNKNOWN", msg);
    return NULL;
  }
  napi_throw(env, error);
  return NULL;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

/* open(name: string, flags: number) -> [fd, actualName]
 * flags are the IFF_* bits beyond IFF_TUN (IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE). */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ + 1] = {0};
  size_t nlen = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "open(name, flags)");
    return NULL;
  }
  if (nlen >= IFNAMSIZ) {
    napi_throw_range_error(env, "EINVAL", "interface name longer than 15 bytes");
    return NULL;
  }
  int32_t flags;
  if (get_i32(env, argv[1], &flags)) {
    napi_throw_type_error(env, "EINVAL", "flags must be a number");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = (short)(IFF_TUN | flags);
  memcpy(ifr.ifr_name, name, nlen);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "ioctl TUNSETIFF", e);
  }
  napi_value res, vfd, vname;
  CHECK(napi_create_array_with_length(env, 2, &res));
  CHECK(napi_create_int32(env, fd, &vfd));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &vname));
  CHECK(napi_set_element(env, res, 0, vfd));
  CHECK(napi_set_element(env, res, 1, vname));
  return res;
}

/* Parses (fd: number, value: number); on failure throws a TypeError naming `usage`, returns -1. */
static int get_fd_and_i32(napi_env env, napi_callback_info info, int32_t *fd, int32_t *value, const char *usage) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || get_i32(env, argv[0], fd) ||
      get_i32(env, argv[1], value)) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return 0;
}

/* setOffload(fd, flags): TUNSETOFFLOAD (TUN_F_CSUM, TUN_F_TSO4, ...). */
static napi_value tun_set_offload(napi_env env, napi_callback_info info) {
  int32_t fd, flags;
  if (get_fd_and_i32(env, info, &fd, &flags, "setOffload(fd, flags)")) return NULL;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) return throw_errno(env, "ioctl TUNSETOFFLOAD", errno);
  return NULL;
}

/* setVnetHdrSize(fd, size): TUNSETVNETHDRSZ. */
static napi_value tun_set_vnet_hdr_size(napi_env env, napi_callback_info info) {
  int32_t fd, size;
  if (get_fd_and_i32(env, info, &fd, &size, "setVnetHdrSize(fd, size)")) return NULL;
  int sz = size;
  if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) return throw_errno(env, "ioctl TUNSETVNETHDRSZ", errno);
  return NULL;
}

/* setPersist(fd, on): TUNSETPERSIST. A persistent device outlives the fd (and the process):
 * with no reader attached the kernel takes its carrier down and drops what is routed to it. */
static napi_value tun_set_persist(napi_env env, napi_callback_info info) {
  int32_t fd, on;
  if (get_fd_and_i32(env, info, &fd, &on, "setPersist(fd, on)")) return NULL;
  if (ioctl(fd, TUNSETPERSIST, (unsigned long)(on ? 1 : 0)) < 0) return throw_errno(env, "ioctl TUNSETPERSIST", errno);
  return NULL;
}

/* ---- batch reader ------------------------------------------------------------ */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_ref buf_ref;
  napi_ref len_ref;
  uint8_t *buf;
  size_t buf_len;
  uint32_t *lens;
  uint32_t slot;     /* bytes per packet slot */
  uint32_t max;      /* packets per batch */
  uint32_t rounds;   /* batches per wake-up before yielding to the loop */
  int fd;
  int closing;
} reader_t;

static void reader_free(uv_handle_t *h) {
  reader_t *r = (reader_t *)h->data;
  napi_delete_reference(r->env, r->cb);
  napi_delete_reference(r->env, r->buf_ref);
  napi_delete_reference(r->env, r->len_ref);
  free(r);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  reader_t *r = (reader_t *)h->data;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, global, argv[2];
  napi_get_reference_value(env, r->cb, &cb);
  napi_get_global(env, &global);
  for (uint32_t round = 0; round < r->rounds && !r->closing; round++) {
    uint32_t n = 0;
    int err = 0;
    while (n < r->max) {
      ssize_t got = read(r->fd, r->buf + (size_t)n * r->slot, r->slot);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
        break;
      }
      r->lens[n++] = (uint32_t)got;
    }
    if (n == 0 && err == 0) break;
    napi_create_uint32(env, n, &argv[0]);
    napi_create_int32(env, err, &argv[1]);
    napi_value ret;
    /* The callback must consume the batch before returning: the slots are reused. */
    napi_status st = napi_make_callback(env, NULL, global, cb, 2, argv, &ret);
    if (st != napi_ok) break;
    if (n < r->max || err) break;
  }
  napi_close_handle_scope(env, scope);
}

/* startReader(fd, buf, slotSize, lengths: Uint32Array, maxPackets, rounds, cb(count, errno)) -> handle */
static napi_value tun_start_reader(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, slot, maxp, rounds;
  if (argc < 7 || get_i32(env, argv[0], &fd) || get_i32(env, argv[2], &slot) || get_i32(env, argv[4], &maxp) ||
      get_i32(env, argv[5], &rounds) || slot <= 0 || maxp <= 0 || rounds <= 0) {
    napi_throw_type_error(env, "EINVAL", "startReader(fd, buf, slotSize, lengths, maxPackets, rounds, cb)");
    return NULL;
  }
  void *data;
  size_t blen;
  if (napi_get_buffer_info(env, argv[1], &data, &blen) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "buf must be a Buffer");
    return NULL;
  }
  napi_typedarray_type tt;
  size_t llen;
  void *ldata;
  if (napi_get_typedarray_info(env, argv[3], &tt, &llen, &ldata, NULL, NULL) != napi_ok || tt != napi_uint32_array) {
    napi_throw_type_error(env, "EINVAL", "lengths must be a Uint32Array");
    return NULL;
  }
  if ((size_t)slot * (size_t)maxp > blen || (size_t)maxp > llen) {
    napi_throw_range_error(env, "EINVAL", "buffer too small for maxPackets * slotSize");
    return NULL;
  }
  reader_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "calloc", ENOMEM);
  r->env = env;
  r->fd = fd;
  r->buf = data;
  r->buf_len = blen;
  r->lens = ldata;
  r->slot = (uint32_t)slot;
  r->max = (uint32_t)maxp;
  r->rounds = (uint32_t)rounds;
  napi_create_reference(env, argv[6], 1, &r->cb);
  napi_create_reference(env, argv[1], 1, &r->buf_ref);
  napi_create_reference(env, argv[3], 1, &r->len_ref);
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc == 0) {
    r->poll.data = r;
    rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  }
  if (rc != 0) {
    napi_delete_reference(env, r->cb);
    napi_delete_reference(env, r->buf_ref);
    napi_delete_reference(env, r->len_ref);
    free(r);
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  napi_value ext;
  CHECK(napi_create_external(env, r, NULL, NULL, &ext));
  return ext;
}

/* stopReader(handle): stops polling; the handle is freed by libuv on close. */
static napi_value tun_stop_reader(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  reader_t *r;
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&r) != napi_ok || !r) {
    napi_throw_type_error(env, "EINVAL", "stopReader(handle)");
    return NULL;
  }
  if (!r->closing) {
    r->closing = 1;
    uv_poll_stop(&r->poll);
    uv_close((uv_handle_t *)&r->poll, reader_free);
  }
  return NULL;
}

/* write(fd, buf, offset, length) -> bytes written, or -1 when the queue is full (EAGAIN). */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, off, len;
  void *data;
  size_t blen;
  if (argc < 4 || get_i32(env, argv[0], &fd) || napi_get_buffer_info(env, argv[1], &data, &blen) != napi_ok ||
      get_i32(env, argv[2], &off) || get_i32(env, argv[3], &len) || off < 0 || len < 0 ||
      (size_t)off + (size_t)len > blen) {
    napi_throw_type_error(env, "EINVAL", "write(fd, buf, offset, length)");
    return NULL;
  }
  ssize_t w;
  do { w = write(fd, (uint8_t *)data + off, (size_t)len); } while (w < 0 && errno == EINTR);
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return throw_errno(env, "write", errno);
  napi_value res;
  CHECK(napi_create_int32(env, w < 0 ? -1 : (int32_t)w, &res));
  return res;
}

/* writeBatch(fd, buf, offsets: Uint32Array, lengths: Uint32Array, count) -> packets written.
 * Stops early at EAGAIN (returns how many went). Another errno throws; the error's
 * `index` is the packet that failed (EINVAL: e.g. a GSO frame the kernel rejects). */
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, count;
  void *data;
  size_t blen;
  napi_typedarray_type t1, t2;
  size_t n1, n2;
  void *offs, *lens;
  if (argc < 5 || get_i32(env, argv[0], &fd) || napi_get_buffer_info(env, argv[1], &data, &blen) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &t1, &n1, &offs, NULL, NULL) != napi_ok ||
      napi_get_typedarray_info(env, argv[3], &t2, &n2, &lens, NULL, NULL) != napi_ok || t1 != napi_uint32_array ||
      t2 != napi_uint32_array || get_i32(env, argv[4], &count) || count < 0 || (size_t)count > n1 ||
      (size_t)count > n2) {
    napi_throw_type_error(env, "EINVAL", "writeBatch(fd, buf, offsets, lengths, count)");
    return NULL;
  }
  const uint32_t *o = offs, *l = lens;
  int32_t i = 0;
  for (; i < count; i++) {
    if ((size_t)o[i] + (size_t)l[i] > blen) {
      napi_throw_range_error(env, "EINVAL", "writeBatch: packet outside the buffer");
      return NULL;
    }
    ssize_t w;
    do { w = write(fd, (uint8_t *)data + o[i], l[i]); } while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return throw_errno_at(env, "write", errno, i);
    }
  }
  napi_value res;
  CHECK(napi_create_int32(env, i, &res));
  return res;
}

static napi_value tun_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "close(fd)");
    return NULL;
  }
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

/* realtimeNs() -> bigint: CLOCK_REALTIME, the clock pcap timestamps use. */
static napi_value tun_realtime_ns(napi_env env, napi_callback_info info) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  napi_value res;
  CHECK(napi_create_bigint_uint64(env, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, &res));
  return res;
}

#define EXPORT_FN(name, fn)                                        \
  do {                                                             \
    napi_value f;                                                  \
    CHECK(napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f)); \
    CHECK(napi_set_named_property(env, exports, name, f));        \
  } while (0)

#define EXPORT_CONST(name, val)                                    \
  do {                                                             \
    napi_value v;                                                  \
    CHECK(napi_create_int32(env, (int32_t)(val), &v));            \
    CHECK(napi_set_named_property(env, exports, name, v));        \
  } while (0)

NAPI_MODULE_INIT() {
  EXPORT_FN("open", tun_open);
  EXPORT_FN("setOffload", tun_set_offload);
  EXPORT_FN("setVnetHdrSize", tun_set_vnet_hdr_size);
  EXPORT_FN("setPersist", tun_set_persist);
  EXPORT_FN("startReader", tun_start_reader);
  EXPORT_FN("stopReader", tun_stop_reader);
  EXPORT_FN("write", tun_write);
  EXPORT_FN("writeBatch", tun_write_batch);
  EXPORT_FN("close", tun_close);
  EXPORT_FN("realtimeNs", tun_realtime_ns);
  EXPORT_CONST("IFF_NO_PI", IFF_NO_PI);
  EXPORT_CONST("IFF_VNET_HDR", IFF_VNET_HDR);
  EXPORT_CONST("IFF_MULTI_QUEUE", IFF_MULTI_QUEUE);
  EXPORT_CONST("TUN_F_CSUM", TUN_F_CSUM);
  EXPORT_CONST("TUN_F_TSO4", TUN_F_TSO4);
  EXPORT_CONST("TUN_F_TSO6", TUN_F_TSO6);
  EXPORT_CONST("TUN_F_TSO_ECN", TUN_F_TSO_ECN);
  return exports;
}
