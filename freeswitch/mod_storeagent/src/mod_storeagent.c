/* mod_storeagent: FreeSWITCH glue only (DESIGN.md principle 10). Audio, protocol and websocket live in the sa_*
 * core; this file wires it to a channel: a READ media bug feeds caller audio up, a writer thread on its own 20 ms
 * clock writes agent speech with switch_core_session_write_frame (WRITE_REPLACE bugs stall when the caller's RTP
 * stops, measured on 1.10.12), and storeagent::* events report the stream. See README.md: it is the contract.
 *
 * Lifetime: the per-call context is malloc'd (not from the session pool) and freed only by its writer thread,
 * after the media bug has closed and no API call holds it. The writer and websocket threads reach the session
 * only through switch_core_session_locate + rwunlock. CLOSE never blocks: it runs under the session's bug lock. */
#include <switch.h>

#include <pthread.h>
#include <time.h>

#include "sa_args.h"
#include "sa_call.h"
#include "sa_ws.h"

#define SA_NAME "storeagent"
#define SA_EV_CONNECT_NAME "storeagent::connect"
#define SA_EV_DISCONNECT_NAME "storeagent::disconnect"
#define SA_EV_ERROR_NAME "storeagent::error"
#define SA_EV_MARK_NAME "storeagent::mark"
#define SA_MAX_FRAME 960 /* 20 ms at 48 kHz */

SWITCH_MODULE_LOAD_FUNCTION(mod_storeagent_load);
SWITCH_MODULE_SHUTDOWN_FUNCTION(mod_storeagent_shutdown);
SWITCH_MODULE_DEFINITION(mod_storeagent, mod_storeagent_load, mod_storeagent_shutdown, NULL);

static const char *const subclasses[] = {SA_EV_CONNECT_NAME, SA_EV_DISCONNECT_NAME, SA_EV_ERROR_NAME, SA_EV_MARK_NAME};

static struct {
    switch_mutex_t *lock; /* context handoff between the channel, API calls and writer threads */
    int writers;          /* writer threads alive (guarded by lock) */
    unsigned prebuffer_ms, max_buffer_ms, stats_ms, connect_timeout_s, ping_ms, ping_timeout_ms;
} globals;

typedef struct {
    char uuid[SWITCH_UUID_FORMATTED_LENGTH + 32];
    sa_call_t *call;
    unsigned rate;           /* the channel's read rate: L16 in and out of the core at this rate */
    switch_memory_pool_t *pool; /* owns the L16 codec; destroyed by the writer thread */
    switch_codec_t codec;
    int api_refs;            /* API calls using `call` right now (guarded by globals.lock) */
    int bug_closed;          /* CLOSE ran: the channel no longer points here (guarded by globals.lock) */
} sa_ctx_t;

/* ------------------------------------------------------------------------------------------------ events */
static void fire(sa_ctx_t *ctx, const char *subclass, const sa_event_t *ev)
{
    switch_event_t *event = NULL;
    if (switch_event_create_subclass(&event, SWITCH_EVENT_CUSTOM, subclass) != SWITCH_STATUS_SUCCESS) return;
    switch_core_session_t *session = switch_core_session_locate(ctx->uuid);
    if (session) {
        switch_channel_event_set_data(switch_core_session_get_channel(session), event);
        switch_core_session_rwunlock(session);
    } else { /* the channel is gone (e.g. disconnect after hangup): the agent still matches on Unique-ID */
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Unique-ID", ctx->uuid);
    }
    if (ev->kind == SA_EV_MARK) {
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Mark-Name", ev->mark_name);
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Mark-Event",
                                       ev->mark_event == SA_MARK_PLAYED ? "played" : "cleared");
    }
    if (ev->kind == SA_EV_DISCONNECT) switch_event_add_header(event, SWITCH_STACK_BOTTOM, "Close-Code", "%d", ev->code);
    if (ev->detail && *ev->detail) switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Reason", ev->detail);
    switch_event_fire(&event);
}

/* The agent stopped answering pings: its node is gone, and so is the ESL socket that parks this channel (it got no
 * FIN either, so `socket` would wait for TCP to give up, minutes of dead air). Ending the park runs the dialplan's
 * next action, the fallback, as when the agent dies cleanly. */
static void unpark(sa_ctx_t *ctx)
{
    switch_core_session_t *session = switch_core_session_locate(ctx->uuid);
    if (!session) return;
    switch_channel_t *channel = switch_core_session_get_channel(session);
    switch_log_printf(SWITCH_CHANNEL_UUID_LOG(ctx->uuid), SWITCH_LOG_WARNING,
                      "audio websocket: no answer to pings for %u ms; continuing the dialplan\n", globals.ping_timeout_ms);
    switch_channel_set_variable(channel, "storeagent_stream_end", "ping-timeout");
    switch_channel_clear_flag(channel, CF_PARK);
    switch_core_session_rwunlock(session);
}

static void on_core_event(void *ud, const sa_event_t *ev)
{
    sa_ctx_t *ctx = ud;
    switch (ev->kind) {
    case SA_EV_CONNECT: fire(ctx, SA_EV_CONNECT_NAME, ev); break;
    case SA_EV_DISCONNECT:
        fire(ctx, SA_EV_DISCONNECT_NAME, ev);
        if (ev->detail && !strcmp(ev->detail, SA_WS_REASON_TIMEOUT)) unpark(ctx);
        break;
    case SA_EV_ERROR:
        switch_log_printf(SWITCH_CHANNEL_UUID_LOG(ctx->uuid), SWITCH_LOG_WARNING, "audio websocket failed: %s\n",
                          ev->detail ? ev->detail : "");
        fire(ctx, SA_EV_ERROR_NAME, ev);
        break;
    case SA_EV_MARK: fire(ctx, SA_EV_MARK_NAME, ev); break;
    case SA_EV_MALFORMED:
        switch_log_printf(SWITCH_CHANNEL_UUID_LOG(ctx->uuid), SWITCH_LOG_WARNING, "dropped message: %s\n",
                          ev->detail ? ev->detail : "");
        break;
    case SA_EV_CLEAR: break;
    }
}

static void lws_log(int level, const char *line)
{
    switch_log_printf(SWITCH_CHANNEL_LOG, level == 1 /* LLL_ERR */ ? SWITCH_LOG_ERROR : SWITCH_LOG_WARNING,
                      "libwebsockets: %s", line);
}

/* ----------------------------------------------------------------------------------------- media bug */
/* sa_read_frame_fn over switch_core_media_bug_read. SWITCH_TRUE: on 1.10.12 a READ-only bug with an empty buffer
 * returns SWITCH_STATUS_FALSE with TRUE, but SUCCESS with a frame of filler (0xff bytes) with FALSE. */
static long bug_read_frame(void *src, int16_t *buf, size_t cap)
{
    switch_frame_t frame = {0};
    frame.data = buf;
    frame.buflen = (uint32_t)(cap * sizeof(int16_t));
    if (switch_core_media_bug_read((switch_media_bug_t *)src, &frame, SWITCH_TRUE) != SWITCH_STATUS_SUCCESS) return 0;
    if (frame.channels > 1) return -1; /* never for a READ-stream bug without SMBF_STEREO */
    return (long)(frame.datalen / sizeof(int16_t));
}

static switch_bool_t bug_callback(switch_media_bug_t *bug, void *user_data, switch_abc_type_t type)
{
    sa_ctx_t *ctx = user_data;
    switch (type) {
    case SWITCH_ABC_TYPE_READ:
        /* One frame per callback (the core bounds it): FreeSWITCH buffered exactly one read frame before calling. */
        sa_call_drain(ctx->call, bug_read_frame, bug);
        break;
    case SWITCH_ABC_TYPE_CLOSE: {
        /* Hangup, `stop`, or the writer removing us: detach from the channel; the writer thread frees. */
        switch_core_session_t *session = switch_core_media_bug_get_session(bug);
        switch_mutex_lock(globals.lock);
        switch_channel_set_private(switch_core_session_get_channel(session), SA_NAME, NULL);
        ctx->bug_closed = 1;
        switch_mutex_unlock(globals.lock);
        break;
    }
    default:
        break;
    }
    return SWITCH_TRUE;
}

/* ------------------------------------------------------------------------------------- writer thread */
static int done_with_ctx(sa_ctx_t *ctx)
{
    switch_mutex_lock(globals.lock);
    int done = ctx->bug_closed && ctx->api_refs == 0;
    switch_mutex_unlock(globals.lock);
    return done;
}

static void ctx_free(sa_ctx_t *ctx)
{
    sa_call_free(ctx->call); /* joins the websocket thread: its last events fire before this returns */
    if (switch_core_codec_ready(&ctx->codec)) switch_core_codec_destroy(&ctx->codec);
    if (ctx->pool) switch_core_destroy_memory_pool(&ctx->pool);
    free(ctx);
}

static void *writer_main(void *arg)
{
    sa_ctx_t *ctx = arg;
    int16_t pcm[SA_MAX_FRAME];
    size_t n = ctx->rate / 50;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        switch_mutex_lock(globals.lock);
        int closed = ctx->bug_closed;
        switch_mutex_unlock(globals.lock);
        if (closed || sa_call_closed(ctx->call)) break;
        sa_call_tick(ctx->call, pcm, n); /* uplink cadence, playout, mark reports: every tick */
        switch_core_session_t *session = switch_core_session_locate(ctx->uuid);
        if (!session) break;
        switch_channel_t *channel = switch_core_session_get_channel(session);
        if (switch_channel_down(channel)) {
            switch_core_session_rwunlock(session);
            break;
        }
        if (switch_channel_media_ready(channel)) {
            /* Silence too: RTP must keep flowing to the carrier while the agent is quiet. */
            switch_frame_t frame = {0};
            frame.codec = &ctx->codec;
            frame.data = pcm;
            frame.datalen = (uint32_t)(n * 2);
            frame.buflen = sizeof(pcm);
            frame.samples = (uint32_t)n;
            frame.rate = ctx->rate;
            frame.channels = 1;
            switch_core_session_write_frame(session, &frame, SWITCH_IO_FLAG_NONE, 0);
        }
        switch_core_session_rwunlock(session);
        next.tv_nsec += 20 * 1000 * 1000;
        if (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 1) next = now; /* stalled over a second: resync, do not burst */
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
    }
    /* The websocket closed (agent gone) or the channel is going: stop playing into the call at once, so the
     * dialplan's fallback is heard alone, and drop the bug if the channel still has it. */
    switch_core_session_t *session = switch_core_session_locate(ctx->uuid);
    if (session) {
        switch_core_media_bug_remove_callback(session, bug_callback);
        switch_core_session_rwunlock(session);
    }
    for (int waited = 0; !done_with_ctx(ctx); waited++) {
        if (waited == 500) /* 10 s: a session that never closes our bug is a FreeSWITCH bug; keep waiting */
            switch_log_printf(SWITCH_CHANNEL_UUID_LOG(ctx->uuid), SWITCH_LOG_WARNING, "waiting for media bug close\n");
        switch_yield(20000);
    }
    ctx_free(ctx);
    switch_mutex_lock(globals.lock);
    globals.writers--;
    switch_mutex_unlock(globals.lock);
    return NULL;
}

/* --------------------------------------------------------------------------------------------------- API */
static const char *start_stream(switch_core_session_t *session, const sa_args_t *a, char *err, size_t errlen)
{
    switch_channel_t *channel = switch_core_session_get_channel(session);
    switch_codec_implementation_t impl = {0};
    if (switch_core_session_get_read_impl(session, &impl) != SWITCH_STATUS_SUCCESS || !impl.actual_samples_per_second)
        return "channel has no media yet (answer or pre_answer first)";
    sa_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) return "out of memory";
    switch_copy_string(ctx->uuid, a->uuid, sizeof(ctx->uuid));
    ctx->rate = impl.actual_samples_per_second;
    if (switch_core_new_memory_pool(&ctx->pool) != SWITCH_STATUS_SUCCESS ||
        switch_core_codec_init(&ctx->codec, "L16", NULL, NULL, ctx->rate, 20, 1,
                               SWITCH_CODEC_FLAG_ENCODE | SWITCH_CODEC_FLAG_DECODE, NULL, ctx->pool) != SWITCH_STATUS_SUCCESS) {
        ctx_free(ctx);
        return "cannot initialise the L16 codec at the channel's rate";
    }
    sa_call_config_t cfg = {a->uuid, a->url, a->token, a->rate, ctx->rate, globals.prebuffer_ms, globals.max_buffer_ms,
                            globals.stats_ms, globals.connect_timeout_s, on_core_event, ctx, globals.ping_ms,
                            globals.ping_timeout_ms};
    ctx->call = sa_call_new(&cfg, err, errlen);
    if (!ctx->call) {
        ctx_free(ctx);
        return err;
    }
    /* Claim the channel before the bug exists, so a CLOSE (hangup) can never run before the claim. */
    switch_mutex_lock(globals.lock);
    int busy = switch_channel_get_private(channel, SA_NAME) != NULL;
    if (!busy) switch_channel_set_private(channel, SA_NAME, ctx);
    switch_mutex_unlock(globals.lock);
    if (busy) {
        ctx_free(ctx);
        return "already streaming on this channel";
    }
    switch_media_bug_t *bug = NULL;
    if (switch_core_media_bug_add(session, SA_NAME, NULL, bug_callback, ctx, 0, SMBF_READ_STREAM | SMBF_NO_PAUSE,
                                  &bug) != SWITCH_STATUS_SUCCESS) {
        switch_mutex_lock(globals.lock);
        switch_channel_set_private(channel, SA_NAME, NULL);
        switch_mutex_unlock(globals.lock);
        ctx_free(ctx);
        return "cannot add the media bug";
    }
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int thread_ok = sa_call_start(ctx->call, err, errlen) == 0;
    if (thread_ok) {
        switch_mutex_lock(globals.lock);
        globals.writers++;
        switch_mutex_unlock(globals.lock);
        if (pthread_create(&tid, &attr, writer_main, ctx) != 0) {
            switch_mutex_lock(globals.lock);
            globals.writers--;
            switch_mutex_unlock(globals.lock);
            snprintf(err, errlen, "cannot start the writer thread");
            thread_ok = 0;
        }
    }
    pthread_attr_destroy(&attr);
    if (!thread_ok) { /* CLOSE runs inside remove and detaches the context; nobody else has seen it */
        switch_core_media_bug_remove(session, &bug);
        ctx_free(ctx);
        return err;
    }
    return NULL;
}

/* Runs `fn` on the channel's live context, holding an API reference so the writer cannot free it meanwhile. */
static int with_ctx(switch_core_session_t *session, void (*fn)(sa_call_t *))
{
    switch_mutex_lock(globals.lock);
    sa_ctx_t *ctx = switch_channel_get_private(switch_core_session_get_channel(session), SA_NAME);
    if (ctx) ctx->api_refs++;
    switch_mutex_unlock(globals.lock);
    if (!ctx) return 0;
    fn(ctx->call);
    switch_mutex_lock(globals.lock);
    ctx->api_refs--;
    switch_mutex_unlock(globals.lock);
    return 1;
}

SWITCH_STANDARD_API(uuid_storeagent_api)
{
    (void)session;
    sa_args_t a;
    char err[256] = "";
    if (sa_args_parse(cmd, &a, err, sizeof(err)) != 0) {
        stream->write_function(stream, "-ERR %s\n", err);
        return SWITCH_STATUS_SUCCESS;
    }
    switch_core_session_t *target = switch_core_session_locate(a.uuid);
    if (!target) {
        stream->write_function(stream, "-ERR uuid: no such channel\n");
        return SWITCH_STATUS_SUCCESS;
    }
    const char *fail = NULL;
    if (a.cmd == SA_CMD_START) {
        fail = start_stream(target, &a, err, sizeof(err));
    } else if (a.cmd == SA_CMD_CLEAR) {
        if (!with_ctx(target, sa_call_clear)) fail = "not streaming on this channel";
    } else if (switch_core_media_bug_remove_callback(target, bug_callback) != SWITCH_STATUS_SUCCESS) {
        fail = "not streaming on this channel"; /* stop racing hangup: whoever removes the bug first wins */
    }
    switch_core_session_rwunlock(target);
    if (fail) stream->write_function(stream, "-ERR %s\n", fail);
    else stream->write_function(stream, "+OK\n");
    return SWITCH_STATUS_SUCCESS;
}

/* ------------------------------------------------------------------------------------- load / shutdown */
static void load_config(void)
{
    globals.prebuffer_ms = SA_DEFAULT_PREBUFFER_MS;
    globals.max_buffer_ms = SA_DEFAULT_MAX_BUFFER_MS;
    globals.stats_ms = SA_DEFAULT_STATS_MS;
    globals.connect_timeout_s = SA_DEFAULT_CONNECT_TIMEOUT_S;
    globals.ping_ms = SA_DEFAULT_PING_MS;
    globals.ping_timeout_ms = SA_DEFAULT_PING_TIMEOUT_MS;
    switch_xml_t cfg = NULL, settings, param;
    switch_xml_t xml = switch_xml_open_cfg("storeagent.conf", &cfg, NULL);
    if (!xml) return; /* optional: the defaults are the tuned values */
    if ((settings = switch_xml_child(cfg, "settings"))) {
        for (param = switch_xml_child(settings, "param"); param; param = param->next) {
            const char *name = switch_xml_attr_soft(param, "name"), *value = switch_xml_attr_soft(param, "value");
            int v = atoi(value);
            if (!strcasecmp(name, "prebuffer-ms") && v >= 0 && v <= 60) globals.prebuffer_ms = (unsigned)v;
            else if (!strcasecmp(name, "max-buffer-ms") && v >= 1000) globals.max_buffer_ms = (unsigned)v;
            else if (!strcasecmp(name, "stats-interval-ms") && v >= 0) globals.stats_ms = (unsigned)v;
            else if (!strcasecmp(name, "connect-timeout-s") && v > 0) globals.connect_timeout_s = (unsigned)v;
            else if (!strcasecmp(name, "ping-interval-ms") && v >= 20) globals.ping_ms = (unsigned)v;
            else if (!strcasecmp(name, "ping-timeout-ms") && v >= 100) globals.ping_timeout_ms = (unsigned)v;
            else switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_WARNING, "storeagent.conf: ignored param %s=%s\n",
                                   name, value);
        }
    }
    switch_xml_free(xml);
}

SWITCH_MODULE_LOAD_FUNCTION(mod_storeagent_load)
{
    size_t reserved = 0;
    for (; reserved < sizeof(subclasses) / sizeof(subclasses[0]); reserved++) {
        if (switch_event_reserve_subclass(subclasses[reserved]) != SWITCH_STATUS_SUCCESS) {
            switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_ERROR, "cannot reserve %s\n", subclasses[reserved]);
            while (reserved--) switch_event_free_subclass(subclasses[reserved]);
            return SWITCH_STATUS_TERM;
        }
    }
    memset(&globals, 0, sizeof(globals));
    switch_mutex_init(&globals.lock, SWITCH_MUTEX_NESTED, pool);
    load_config();
    sa_ws_set_log(lws_log);
    *module_interface = switch_loadable_module_create_module_interface(pool, modname);
    switch_api_interface_t *api = NULL;
    SWITCH_ADD_API(api, "uuid_storeagent", "Stream call audio to the StoreAgent agent", uuid_storeagent_api,
                   SA_USAGE);
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid start");
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid stop");
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid clear");
    return SWITCH_STATUS_SUCCESS;
}

SWITCH_MODULE_SHUTDOWN_FUNCTION(mod_storeagent_shutdown)
{
    /* Calls still streaming hold writer threads that use this code: wait for them (hangups end them). */
    for (int i = 0; i < 500; i++) {
        switch_mutex_lock(globals.lock);
        int writers = globals.writers;
        switch_mutex_unlock(globals.lock);
        if (!writers) break;
        if (i == 499) {
            switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_ERROR, "%d streams still active; refusing to unload\n",
                              writers);
            return SWITCH_STATUS_FALSE;
        }
        switch_yield(20000);
    }
    switch_console_set_complete("del uuid_storeagent");
    sa_ws_set_log(NULL);
    for (size_t i = 0; i < sizeof(subclasses) / sizeof(subclasses[0]); i++) switch_event_free_subclass(subclasses[i]);
    return SWITCH_STATUS_SUCCESS;
}
