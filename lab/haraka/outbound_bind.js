// outbound_bind: every outbound connection of this Haraka leaves from the
// instance's own source address (lab/run: one address per sender), with its
// own HELO name. Haraka binds outbound sockets to mx.bind, which only a
// get_mx hook can set (lab-recipes-2 §9).
const net_utils = require('haraka-net-utils')

exports.register = function () {
    this.cfg = this.config.get('outbound_bind.ini').main
}

exports.hook_get_mx = async function (next, hmail, domain) {
    // A failed look-up (a resolver slow while a name server is down: the
    // cluster lab's failover) must not fall back to Haraka's own get_mx,
    // whose connections leave from the namespace's default address and
    // would be credited to another client: try again later instead.
    let mxs
    try {
        mxs = await net_utils.get_mx(domain)
    } catch (err) {
        return next(DENYSOFT, `outbound_bind: MX look-up of ${domain} failed: ${err.message}`)
    }
    if (!mxs.length) return next(DENYSOFT, `outbound_bind: no MX for ${domain}`)
    for (const mx of mxs) {
        if (this.cfg.ip) mx.bind = this.cfg.ip
        if (this.cfg.helo) mx.bind_helo = this.cfg.helo
    }
    next(OK, mxs)
}
