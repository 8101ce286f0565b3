/*
 * docker_plugin.so: the C half. Only what must be C: the `struct uwsgi_plugin` uWSGI looks up
 * by name (`docker_plugin`), its options, and the vassal hook that hands the vassal's plain
 * fields to Rust. Compiled against the installed uWSGI's own `uwsgi --dot-h` and
 * `uwsgi --cflags`, so every struct layout is that uWSGI's.
 *
 * Versions (the macros come from `uwsgi --cflags`):
 * - 2.0.7 .. 2.0.x: `vassal_before_exec(struct uwsgi_instance *)`, called in the forked child
 *   after the Emperor has set UWSGI_EMPEROR_FD(_CONFIG), closed the other fds, set up stdin
 *   and run its hooks: just before it would exec the vassal. Generic plugins (ours: it has no
 *   request handler) get it only when `.vassal` is set too (emperor.c tests `gp[i]->vassal`
 *   before calling `gp[i]->vassal_before_exec`), hence the empty `.vassal`.
 * - 2.1 (master): `vassal_before_exec(struct uwsgi_instance *, char **argv)`, the argv the
 *   Emperor is about to exec; we pass it on to the bridge.
 */
#include "uwsgi.h"

#include <dlfcn.h>
#include <stddef.h>

extern struct uwsgi_server uwsgi;

#if UWSGI_VERSION_BASE > 2 || (UWSGI_VERSION_BASE == 2 && UWSGI_VERSION_MAJOR >= 1)
#define DOCKER_HOOK_HAS_ARGV 1
#elif UWSGI_VERSION_BASE == 2 && UWSGI_VERSION_MAJOR == 0 && UWSGI_VERSION_MINOR >= 7
#define DOCKER_HOOK_HAS_ARGV 0
#else
#error "docker_plugin needs uWSGI 2.0.7 or later (the vassal_before_exec hook)"
#endif

/* What Rust gets: plain C types only. Mirrored by `ffi::RawVassal` in src/ffi.rs. */
struct uwsgi_docker_vassal {
	const char *name;
	const char *config;
	uint32_t config_len;
	int use_config;
	char **argv;
	int required;
	int debug;
	const char *daemon_socket;
	const char *socket_dir;
	const char *bridge;
	const char *plugin_path;
	unsigned int socket_mode;
	const char *name_prefix;
	const char *socket_owner;
	const char *policy;
	const char *pull;
	const char *pull_timeout;
	const char *registry_auth;
};

/* The layout src/ffi.rs asserts too, in pointer sizes (P): change both or neither. */
#define DOCKER_P sizeof(void *)
#define DOCKER_AT(field, at) _Static_assert(offsetof(struct uwsgi_docker_vassal, field) == (at), \
	"struct uwsgi_docker_vassal: " #field " moved; update RawVassal in src/ffi.rs")
DOCKER_AT(name, 0);
DOCKER_AT(config, DOCKER_P);
DOCKER_AT(config_len, 2 * DOCKER_P);
DOCKER_AT(use_config, 2 * DOCKER_P + 4);
DOCKER_AT(argv, 2 * DOCKER_P + 8);
DOCKER_AT(required, 3 * DOCKER_P + 8);
DOCKER_AT(debug, 3 * DOCKER_P + 12);
DOCKER_AT(daemon_socket, 3 * DOCKER_P + 16);
DOCKER_AT(socket_dir, 4 * DOCKER_P + 16);
DOCKER_AT(bridge, 5 * DOCKER_P + 16);
DOCKER_AT(plugin_path, 6 * DOCKER_P + 16);
DOCKER_AT(socket_mode, 7 * DOCKER_P + 16);
DOCKER_AT(name_prefix, 8 * DOCKER_P + 16);
DOCKER_AT(socket_owner, 9 * DOCKER_P + 16);
DOCKER_AT(policy, 10 * DOCKER_P + 16);
DOCKER_AT(pull, 11 * DOCKER_P + 16);
DOCKER_AT(pull_timeout, 12 * DOCKER_P + 16);
DOCKER_AT(registry_auth, 13 * DOCKER_P + 16);
_Static_assert(sizeof(struct uwsgi_docker_vassal) == 14 * DOCKER_P + 16,
	"struct uwsgi_docker_vassal changed size; update RawVassal in src/ffi.rs");

void uwsgi_docker_vassal_before_exec(const struct uwsgi_docker_vassal *);

static struct {
	int enabled;
	int required;
	int debug;
	char *daemon_socket;
	char *socket_dir;
	char *bridge;
	char *name_prefix;
	char *policy;
	char *pull;
	char *pull_timeout;
	char *registry_auth;
} docker;

static struct uwsgi_option docker_options[] = {
	{"docker-emperor", no_argument, 0, "run vassals that name a docker-image in Docker containers", uwsgi_opt_true, &docker.enabled, 0},
	{"emperor-docker", no_argument, 0, "run vassals that name a docker-image in Docker containers", uwsgi_opt_true, &docker.enabled, 0},
	{"docker-emperor-required", no_argument, 0, "like docker-emperor, and refuse vassals without a docker-image", uwsgi_opt_true, &docker.required, 0},
	{"emperor-docker-required", no_argument, 0, "like docker-emperor, and refuse vassals without a docker-image", uwsgi_opt_true, &docker.required, 0},
	{"docker-debug", no_argument, 0, "log the Docker bridge's debug lines", uwsgi_opt_true, &docker.debug, 0},
	{"docker-daemon-socket", required_argument, 0, "dockerd's unix socket (default /var/run/docker.sock)", uwsgi_opt_set_str, &docker.daemon_socket, 0},
	{"docker-socket-dir", required_argument, 0, "directory for the vassals' proxy sockets (default: the Emperor's private runtime directory)", uwsgi_opt_set_str, &docker.socket_dir, 0},
	{"docker-bridge", required_argument, 0, "the uwsgi-docker binary (default: next to docker_plugin.so, then PATH)", uwsgi_opt_set_str, &docker.bridge, 0},
	{"docker-name-prefix", required_argument, 0, "put this before every container name, so that several Emperors can share one daemon", uwsgi_opt_set_str, &docker.name_prefix, 0},
	{"docker-policy", required_argument, 0, "the operator's policy file: tenant mode, each vassal under its file owner's rules", uwsgi_opt_set_str, &docker.policy, 0},
	{"docker-pull", required_argument, 0, "missing, always or never: when images are pulled (a vassal's docker-pull wins; default missing)", uwsgi_opt_set_str, &docker.pull, 0},
	{"docker-pull-timeout", required_argument, 0, "seconds a pull may take (default 600)", uwsgi_opt_set_str, &docker.pull_timeout, 0},
	{"docker-registry-auth", required_argument, 0, "registry credentials: a file in Docker's config.json format, mode 600", uwsgi_opt_set_str, &docker.registry_auth, 0},
	{0, 0, 0, 0, 0, 0, 0},
};

struct uwsgi_plugin docker_plugin;

static void docker_hand_over(struct uwsgi_instance *ui, char **argv) {
	if (!docker.enabled && !docker.required)
		return;
	Dl_info self;
	const char *plugin_path = NULL;
	if (dladdr(&docker_plugin, &self) && self.dli_fname)
		plugin_path = self.dli_fname;
	struct uwsgi_docker_vassal v = {
		.name = ui->name,
		.config = ui->config,
		.config_len = ui->config_len,
		.use_config = ui->use_config,
		.argv = argv,
		.required = docker.required,
		.debug = docker.debug,
		.daemon_socket = docker.daemon_socket,
		.socket_dir = docker.socket_dir,
		.bridge = docker.bridge,
		.plugin_path = plugin_path,
		/* `chmod-socket` with no value means 666, as in uWSGI's bind_to_unix(). */
		.socket_mode = !uwsgi.chmod_socket ? 0 : uwsgi.chmod_socket_value ? (unsigned int) uwsgi.chmod_socket_value : 0666,
		.name_prefix = docker.name_prefix,
		/* `chown-socket = USER[:GROUP]`, as uWSGI applies it to the sockets it binds. */
		.socket_owner = uwsgi.chown_socket,
		.policy = docker.policy,
		.pull = docker.pull,
		.pull_timeout = docker.pull_timeout,
		.registry_auth = docker.registry_auth,
	};
	/* Returns only for a vassal uWSGI should run itself. */
	uwsgi_docker_vassal_before_exec(&v);
}

#if DOCKER_HOOK_HAS_ARGV
static void docker_vassal_before_exec(struct uwsgi_instance *ui, char **argv) {
	docker_hand_over(ui, argv);
}
#else
static void docker_vassal(struct uwsgi_instance *ui) {
	(void) ui;
}

static void docker_vassal_before_exec(struct uwsgi_instance *ui) {
	docker_hand_over(ui, NULL);
}
#endif

struct uwsgi_plugin docker_plugin = {
	.name = "docker",
	.options = docker_options,
#if !DOCKER_HOOK_HAS_ARGV
	.vassal = docker_vassal,
#endif
	.vassal_before_exec = docker_vassal_before_exec,
};
