/* mod_storeagent: FreeSWITCH glue only (DESIGN.md principle 10). Audio, protocol and websocket live in the sa_*
 * core; this file wires it to a channel: a READ media bug feeds caller audio up, one module-wide clock thread
 * writes every call's agent speech with switch_core_session_write_frame on a 20 ms absolute clock (WRITE_REPLACE
 * bugs stall when the caller's RTP stops, measured on 1.10.12), and storeagent::* events report the stream.
 * See README.md: it is the contract (thread model there).
 *
 * Lifetime: the per-call context is malloc'd (not from the session pool) and freed only by the clock thread, after
 * the media bug has closed and no API call holds it. The stream holds a read lock on its session from start to
 * that point, so the clock never looks the session up (no global session-hash lock per tick). CLOSE never blocks:
 * it runs under the session's bug lock. */
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

typedef struct sa_ctx sa_ctx_t;

static struct {
    switch_mutex_t *lock; /* context handoff between the channel and API calls; never taken by the clock */
    int streams;          /* contexts not yet freed (atomic) */
    sa_ctx_t *incoming;   /* new streams for the clock (lock-free stack) */
    int clock_stop;       /* atomic */
    pthread_t clock;
    int clock_running;
    unsigned prebuffer_ms, max_buffer_ms, stats_ms, connect_timeout_s, ping_ms, ping_timeout_ms;
} globals;

struct sa_ctx {
    char uuid[SWITCH_UUID_FORMATTED_LENGTH + 32];
    switch_core_session_t *session; /* read-locked by the stream from start until freed */
    sa_ctx_t *next;          /* clock thread's list, or the incoming stack */
    int ending;              /* clock thread only: stopped writing, waiting for CLOSE and API refs */
    unsigned waited_ticks;   /* clock thread only */
    sa_call_t *call;
    unsigned rate;           /* the channel's read rate: L16 in and out of the core at this rate */
    switch_memory_pool_t *pool; /* owns the L16 codec; destroyed by the clock thread */
    switch_codec_t codec;
    int api_refs;            /* API calls using `call` right now (written under globals.lock, read atomically) */
    int bug_closed;          /* CLOSE ran: the channel no longer points here (as api_refs) */
};

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
    case SA_EV_CLEAR:
    case SA_EV_PAUSE:
    case SA_EV_RESUME: break; /* the websocket peer asked: it knows; a mark event says what was heard */
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
        /* Hangup, `stop`, or the clock removing us: detach from the channel; the clock thread frees. */
        switch_core_session_t *session = switch_core_media_bug_get_session(bug);
        switch_mutex_lock(globals.lock);
        switch_channel_set_private(switch_core_session_get_channel(session), SA_NAME, NULL);
        __atomic_store_n(&ctx->bug_closed, 1, __ATOMIC_RELEASE);
        switch_mutex_unlock(globals.lock);
        break;
    }
    default:
        break;
    }
    return SWITCH_TRUE;
}

/* -------------------------------------------------------------------------------------- clock thread */
static int done_with_ctx(sa_ctx_t *ctx)
{
    /* bug_closed is stored after the last API ref was taken (both under globals.lock): read it first */
    return __atomic_load_n(&ctx->bug_closed, __ATOMIC_ACQUIRE) && !__atomic_load_n(&ctx->api_refs, __ATOMIC_ACQUIRE);
}

static void ctx_free(sa_ctx_t *ctx)
{
    sa_call_free(ctx->call); /* detaches from the websocket: its last events fire before this returns */
    if (switch_core_codec_ready(&ctx->codec)) switch_core_codec_destroy(&ctx->codec);
    if (ctx->pool) switch_core_destroy_memory_pool(&ctx->pool);
    free(ctx);
}

/* One call's 20 ms tick on the clock thread. Returns 0 once the context can be freed. Never waits. */
static int tick_one(sa_ctx_t *ctx, int16_t *pcm)
{
    switch_channel_t *channel = switch_core_session_get_channel(ctx->session);
    if (!ctx->ending) {
        if (__atomic_load_n(&ctx->bug_closed, __ATOMIC_ACQUIRE) || sa_call_closed(ctx->call) ||
            switch_channel_down(channel)) {
            /* The websocket closed (agent gone) or the channel is going: stop playing into the call at once, so
             * the dialplan's fallback is heard alone, and drop the bug if the channel still has it (CLOSE runs
             * inside the remove, on this thread). */
            ctx->ending = 1;
            if (!__atomic_load_n(&ctx->bug_closed, __ATOMIC_ACQUIRE))
                switch_core_media_bug_remove_callback(ctx->session, bug_callback);
        } else {
            size_t n = ctx->rate / 50;
            sa_call_tick(ctx->call, pcm, n); /* uplink cadence, playout, mark reports: every tick */
            if (switch_channel_media_ready(channel)) {
                /* Silence too: RTP must keep flowing to the carrier while the agent is quiet. */
                switch_frame_t frame = {0};
                frame.codec = &ctx->codec;
                frame.data = pcm;
                frame.datalen = (uint32_t)(n * 2);
                frame.buflen = SA_MAX_FRAME * 2;
                frame.samples = (uint32_t)n;
                frame.rate = ctx->rate;
                frame.channels = 1;
                switch_core_session_write_frame(ctx->session, &frame, SWITCH_IO_FLAG_NONE, 0);
            }
            return 1;
        }
    }
    if (!done_with_ctx(ctx)) {
        if (++ctx->waited_ticks == 500) /* 10 s: a session that never closes our bug is a FreeSWITCH bug */
            switch_log_printf(SWITCH_CHANNEL_UUID_LOG(ctx->uuid), SWITCH_LOG_WARNING, "waiting for media bug close\n");
        return 1;
    }
    return 0;
}

/* Every call's playout on one absolute 20 ms clock. The per-tick path takes no module-wide lock: new streams
 * arrive on a lock-free stack, the live list belongs to this thread, and each call's core has its own locks. */
static void *clock_main(void *arg)
{
    (void)arg;
    sa_ctx_t *live = NULL;
    int16_t pcm[SA_MAX_FRAME];
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!__atomic_load_n(&globals.clock_stop, __ATOMIC_ACQUIRE) || live ||
           __atomic_load_n(&globals.incoming, __ATOMIC_ACQUIRE)) {
        for (sa_ctx_t *in = __atomic_exchange_n(&globals.incoming, NULL, __ATOMIC_ACQ_REL); in;) {
            sa_ctx_t *n = in->next;
            in->next = live;
            live = in;
            in = n;
        }
        for (sa_ctx_t **pp = &live; *pp;) {
            sa_ctx_t *ctx = *pp;
            if (tick_one(ctx, pcm)) {
                pp = &ctx->next;
                continue;
            }
            *pp = ctx->next;
            switch_core_session_rwunlock(ctx->session);
            ctx_free(ctx);
            __atomic_sub_fetch(&globals.streams, 1, __ATOMIC_ACQ_REL);
        }
        next.tv_nsec += 20 * 1000 * 1000;
        if (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 1) next = now; /* stalled over a second: resync, do not burst */
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
    }
    return NULL;
}

static void clock_adopt(sa_ctx_t *ctx)
{
    __atomic_add_fetch(&globals.streams, 1, __ATOMIC_ACQ_REL);
    sa_ctx_t *head = __atomic_load_n(&globals.incoming, __ATOMIC_RELAXED);
    do {
        ctx->next = head;
    } while (!__atomic_compare_exchange_n(&globals.incoming, &head, ctx, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
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
    /* The stream's own read lock: the clock uses the session without a lookup; released when the context is freed. */
    if (switch_core_session_read_lock(session) != SWITCH_STATUS_SUCCESS) {
        switch_core_media_bug_remove(session, &bug); /* CLOSE detaches the context; nobody else has seen it */
        ctx_free(ctx);
        return "channel is going away";
    }
    ctx->session = session;
    if (sa_call_start(ctx->call, err, errlen) != 0) {
        switch_core_media_bug_remove(session, &bug);
        switch_core_session_rwunlock(session);
        ctx_free(ctx);
        return err;
    }
    clock_adopt(ctx);
    return NULL;
}

/* Runs `fn` on the channel's live context, holding an API reference so the clock cannot free it meanwhile. */
static int with_ctx(switch_core_session_t *session, void (*fn)(sa_call_t *))
{
    switch_mutex_lock(globals.lock);
    sa_ctx_t *ctx = switch_channel_get_private(switch_core_session_get_channel(session), SA_NAME);
    if (ctx) __atomic_add_fetch(&ctx->api_refs, 1, __ATOMIC_ACQ_REL);
    switch_mutex_unlock(globals.lock);
    if (!ctx) return 0;
    fn(ctx->call);
    switch_mutex_lock(globals.lock);
    __atomic_sub_fetch(&ctx->api_refs, 1, __ATOMIC_ACQ_REL);
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
    } else if (a.cmd == SA_CMD_CLEAR || a.cmd == SA_CMD_PAUSE || a.cmd == SA_CMD_RESUME) {
        void (*fn)(sa_call_t *) = a.cmd == SA_CMD_CLEAR ? sa_call_clear
                                  : a.cmd == SA_CMD_PAUSE ? sa_call_pause : sa_call_resume;
        if (!with_ctx(target, fn)) fail = "not streaming on this channel";
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
    if (pthread_create(&globals.clock, NULL, clock_main, NULL) != 0) {
        switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_ERROR, "cannot start the playout clock thread\n");
        for (size_t i = 0; i < sizeof(subclasses) / sizeof(subclasses[0]); i++) switch_event_free_subclass(subclasses[i]);
        return SWITCH_STATUS_TERM;
    }
    globals.clock_running = 1;
    *module_interface = switch_loadable_module_create_module_interface(pool, modname);
    switch_api_interface_t *api = NULL;
    SWITCH_ADD_API(api, "uuid_storeagent", "Stream call audio to the StoreAgent agent", uuid_storeagent_api,
                   SA_USAGE);
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid start");
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid stop");
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid clear");
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid pause");
    switch_console_set_complete("add uuid_storeagent ::console::list_uuid resume");
    return SWITCH_STATUS_SUCCESS;
}

SWITCH_MODULE_SHUTDOWN_FUNCTION(mod_storeagent_shutdown)
{
    /* Streams still live run this code on the clock thread: wait for them (hangups end them). */
    for (int i = 0; i < 500; i++) {
        int streams = __atomic_load_n(&globals.streams, __ATOMIC_ACQUIRE);
        if (!streams) break;
        if (i == 499) {
            switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_ERROR, "%d streams still active; refusing to unload\n",
                              streams);
            return SWITCH_STATUS_FALSE;
        }
        switch_yield(20000);
    }
    if (globals.clock_running) {
        __atomic_store_n(&globals.clock_stop, 1, __ATOMIC_RELEASE);
        pthread_join(globals.clock, NULL);
        globals.clock_running = 0;
    }
    sa_ws_shutdown(); /* the websocket service thread, after every connection was destroyed */
    switch_console_set_complete("del uuid_storeagent");
    sa_ws_set_log(NULL);
    for (size_t i = 0; i < sizeof(subclasses) / sizeof(subclasses[0]); i++) switch_event_free_subclass(subclasses[i]);
    return SWITCH_STATUS_SUCCESS;
}
