# livefeed LL-HLS edge: Varnish as an HTTP cache in front of a livefeed origin.
#
#     varnishd -F -f /path/to/livefeed.vcl -a 127.0.0.1:8080 -n WORKDIR -s malloc,256m
#
# Change the origin address below (ADDRESS); -a is where viewers connect. See DEPLOY.md
# ("LL-HLS through caches") and deploy/nginx/livefeed-edge.conf for what the origin's headers
# mean. Varnish's request coalescing (its waiting list) wakes the waiting requests as soon as
# the first one's answer starts, and with streaming on they all get a part that is still being
# written as it grows: the preload-hinted part reaches every viewer at the origin's pace.

vcl 4.1;

import std;

backend livefeed_origin {
    .host = "127.0.0.1";  # ADDRESS: the livefeed origin (or the next cache tier)
    .port = "8888";
    # The origin holds a blocking playlist request for up to 3 target durations.
    .first_byte_timeout = 15s;
    .between_bytes_timeout = 15s;
}

sub vcl_recv {
    # The API and WebRTC signalling (POST/PATCH/DELETE, server-sent events) pass through.
    if (req.url ~ "^/api/" || req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # One cache entry per LL-HLS request whatever the order of its query parameters and
    # whatever else a player adds (livefeed's player adds viewer=ID): only the delivery
    # directives key a playlist request.
    if (req.url ~ "[?&]_HLS_msn=") {
        set req.url = std.querysort(regsuball(req.url, "([?&])(?!_HLS_)[^&=]+=[^&]*", "\1"));
        set req.url = regsuball(req.url, "&&+", "&");
        set req.url = regsub(req.url, "\?&", "?");
    }
    # Cookies and credentials play no part in what LL-HLS serves.
    unset req.http.Cookie;
    return (hash);
}

sub vcl_backend_response {
    # Send each byte on as it arrives, to every client waiting for this object.
    set beresp.do_stream = true;
    # A 404 of a part that does not exist yet must not stick.
    if (beresp.status == 404) {
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Freshness comes from the origin's Cache-Control; nothing stale is served.
    set beresp.grace = 0s;
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache-Status = "HIT";
    } else {
        set resp.http.X-Cache-Status = "MISS";
    }
}
