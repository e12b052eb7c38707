// outbound_bind: every outbound connection of this Haraka leaves from the
// instance's own source address (lab/run: one address per sender), with its
// own HELO name. Haraka binds outbound sockets to mx.bind, which only a
// get_mx hook can set (lab-recipes-2 §9).
const net_utils = require('haraka-net-utils')

exports.register = function () {
    this.cfg = this.config.get('outbound_bind.ini').main
}

exports.hook_get_mx = async function (next, hmail, domain) {
    let mxs
    try {
        mxs = await net_utils.get_mx(domain)
    } catch (err) {
        return next()
    }
    if (!mxs.length) return next()
    for (const mx of mxs) {
        if (this.cfg.ip) mx.bind = this.cfg.ip
        if (this.cfg.helo) mx.bind_helo = this.cfg.helo
    }
    next(OK, mxs)
}
