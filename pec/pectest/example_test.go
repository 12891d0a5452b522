package pectest_test

import (
	"fmt"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

func Example() {
	a, err := pectest.NewProvider(1, nil) // sender's provider (pec.example.it)
	if err != nil {
		panic(err)
	}
	b, err := a.Peer(nil) // recipient's provider (pec.esempio.it), same CA
	if err != nil {
		panic(err)
	}
	o, err := a.Original(&pectest.Original{To: []string{"protocollo@pec.esempio.it"}})
	if err != nil {
		panic(err)
	}
	env, _ := a.Envelope(pectest.Params{Original: o})
	rec, _ := b.Delivery(pectest.Params{Original: o, ReceiptType: pec.ReceiptBreve})
	fmt.Println(env.Kind, env.MessageID == o.ID)
	fmt.Println(rec.Kind, rec.ReceiptType, rec.Recipient, len(rec.HashParts), rec.WantTrusted)
	// Trust store for verifiers: a.CA.Roots() or a.CA.RootPEM().
	// Output:
	// posta-certificata true
	// avvenuta-consegna breve protocollo@pec.esempio.it 1 true
}

func ExampleProvider_Conversation() {
	a, err := pectest.NewProvider(1, nil)
	if err != nil {
		panic(err)
	}
	c, err := a.Conversation(&pectest.ConversationConfig{
		Original: &pectest.Original{To: []string{"protocollo@pec.esempio.it"}, Cc: []string{"info@example.com"}},
		Outcomes: map[string]pectest.Outcome{},
	})
	if err != nil {
		panic(err)
	}
	for _, g := range c.Messages {
		fmt.Println(g.Name, g.Kind)
	}
	// Output:
	// original not-pec
	// accettazione accettazione
	// posta-certificata/protocollo@pec.esempio.it posta-certificata
	// posta-certificata/info@example.com posta-certificata
	// presa-in-carico/pec.esempio.it presa-in-carico
	// avvenuta-consegna/protocollo@pec.esempio.it avvenuta-consegna
}
