package h2

import "golang.org/x/net/http2"

// applySettings takes the peer's SETTINGS (not an acknowledgement): each
// value is checked (RFC 9113 §6.5.2); the initial window applies at once,
// to the open streams too (eachSend); the frame size and header table size
// apply as the acknowledgement is written, since the peer can count on
// them only from then; maxConc, if set, receives
// SETTINGS_MAX_CONCURRENT_STREAMS. The acknowledgement is queued.
func applySettings(f *http2.SettingsFrame, w *writer, send *sendFlow, eachSend func(func(*streamSend)), maxConc func(uint32)) error {
	if f.IsAck() {
		return nil
	}
	var apply []func(w *writer)
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			code := http2.ErrCodeProtocol
			if ce, ok := err.(http2.ConnectionError); ok {
				code = http2.ErrCode(ce)
			}
			return connError{code, "bad_setting"}
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			if !send.setInitial(s.Val, eachSend) {
				return connError{http2.ErrCodeFlowControl, "settings_window_overflow"}
			}
		case http2.SettingMaxConcurrentStreams:
			if maxConc != nil {
				maxConc(s.Val)
			}
		case http2.SettingMaxFrameSize:
			v := s.Val
			apply = append(apply, func(w *writer) { w.maxSend.Store(v) })
		case http2.SettingHeaderTableSize:
			v := s.Val
			apply = append(apply, func(w *writer) { w.enc.SetMaxDynamicTableSizeLimit(v) })
		}
		return nil
	})
	if err != nil {
		return err
	}
	var fn func(w *writer)
	if len(apply) > 0 {
		fn = func(w *writer) {
			for _, a := range apply {
				a(w)
			}
		}
	}
	if !w.queueSettingsAck(fn) {
		return connError{http2.ErrCodeEnhanceYourCalm, "settings_flood"}
	}
	w.kickAsync()
	return nil
}
