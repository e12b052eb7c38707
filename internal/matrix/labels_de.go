package matrix

// german is the German label set (the words of internal/i18n's German
// catalogue: Ergebnis, zugestellt, abgelehnt …).
var german = map[string]string{
	LabelMatrixTitle:    "Persona-Matrix: was Ihr Server tat, und was jede Richtlinie täte",
	LabelMatrixDesc:     "Eine Spalte je empfangendem Server; die erste Zeile zeigt, was Ihr Server tat, die Zeilen darunter, was ein Absender der jeweiligen Richtlinie dort tut.",
	LabelObserved:       "Ihr Server",
	LabelVerdictRow:     "Ergebnis",
	LabelCandidateRow:   "Noch möglich",
	LabelOtherRow:       "Ausgeschlossen",
	LabelAbsentRow:      "Ausgeschlossen durch Fehlendes",
	LabelFits:           "passt",
	LabelContradictions: "passt nicht",
	LabelContradicted:   "widerspricht dem, was Ihr Server tat",
	LabelDelivered:      "zugestellt",
	LabelRefused:        "abgelehnt",
	LabelBoth:           "zugestellt und abgelehnt",
	LabelNotContacted:   "nie kontaktiert",
	LabelContacted:      "kontaktiert",
	LabelFetched:        "abgerufen",
	LabelOpen:           "offen oder abgebrochen: sagt nichts",
	LabelAttempt:        "Versuch",
	LabelAttempts:       "Versuche",
	LabelExpectDeliver:  "stellt zu",
	LabelExpectRefuse:   "lehnt ab",
	LabelExpectNever:    "geht nie dorthin",
	LabelExpectNoMail:   "stellt nie zu",
	LabelExpectAny:      "beides",
	LabelNotFetched:     "nicht abgerufen",
	LabelExpectNoFetch:  "ruft sie nie ab",
	LabelExpectMayFetch: "ruft sie ab oder hat sie im Cache",
	LabelTimelineTitle:  "Zeitleiste der Verbindungen",
	LabelTimelineDesc:   "Eine Marke je Verbindung, nach empfangendem Server, auf einer Zeitachse ab der ersten Verbindung; das Downgrade-Fenster ist hinterlegt.",
	LabelTimelineEmpty:  "Noch keine Verbindung.",
	LabelWindow:         "Downgrade-Fenster: STARTTLS zurückgehalten",
	LabelTimeAxis:       "Zeit seit der ersten Verbindung",
	LabelLegend:         "✓ zugestellt  ✗ abgelehnt  – nie kontaktiert  ≠ Widerspruch",

	ColumnLabel("1w", "top"): "1", ColumnLabel("1w", "bottom"): "ohne STARTTLS", ColumnLabel("1w", "long"): "Persona 1 (STARTTLS zurückgehalten)",
	ColumnLabel("1o", "top"): "1", ColumnLabel("1o", "bottom"): "trotzdem Klartext", ColumnLabel("1o", "long"): "Persona 1 (STARTTLS angeboten, nicht genutzt)",
	ColumnLabel("2", "top"): "2", ColumnLabel("2", "bottom"): "ohne SNI", ColumnLabel("2", "long"): "Persona 2 (selbstsigniert, ohne SNI)",
	ColumnLabel("3", "top"): "3", ColumnLabel("3", "bottom"): "selbstsigniert", ColumnLabel("3", "long"): "Persona 3 (selbstsigniert, TLSA falsch, nicht in MTA-STS)",
	ColumnLabel("4", "top"): "4", ColumnLabel("4", "bottom"): "nur DANE", ColumnLabel("4", "long"): "Persona 4 (selbstsigniert, TLSA passt)",
	ColumnLabel("5", "top"): "5", ColumnLabel("5", "bottom"): "CA, TLSA falsch", ColumnLabel("5", "long"): "Persona 5 (CA-signiert, TLSA falsch)",
	ColumnLabel("6", "top"): "6", ColumnLabel("6", "bottom"): "CA + TLSA", ColumnLabel("6", "long"): "Persona 6 (CA-signiert, TLSA passt)",
	ColumnLabel("7p", "top"): "7 (B)", ColumnLabel("7p", "bottom"): "Klartext", ColumnLabel("7p", "long"): "Persona 7, Zone B, im Klartext",
	ColumnLabel("7t", "top"): "7 (B)", ColumnLabel("7t", "bottom"): "TLS", ColumnLabel("7t", "long"): "Persona 7, Zone B, über TLS (ohne TLSA)",
	ColumnLabel("broken", "top"): "defekt", ColumnLabel("broken", "bottom"): "DNSSEC falsch", ColumnLabel("broken", "long"): "der Server mit defekter DNSSEC-Signatur",
	ColumnLabel("v6", "top"): "IPv6", ColumnLabel("v6", "bottom"): "nur", ColumnLabel("v6", "long"): "der nur über IPv6 erreichbare Server",
	ColumnLabel("sts", "top"): "MTA-STS", ColumnLabel("sts", "bottom"): "Richtlinie", ColumnLabel("sts", "long"): "die MTA-STS-Richtlinie von Zone A",
}

// German is the German label set; a key it lacks falls back to English
// (TestGermanLabels keeps it complete).
func German(key string) string { return labelIn(german, key, English(key)) }
