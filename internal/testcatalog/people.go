package testcatalog

// Teams is the people most test catalogs start with: the groups payments
// and storefront, alice (alice@example.com) in payments and bob
// (bob@example.com) in storefront. It ends with a document separator, so
// a catalog is Teams + its own entities.
const Teams = `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: storefront}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [payments]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: [storefront]}
---
`
