/**
 * Edits typed and not saved, by alias: signing out, or closing the tab, asks first rather than
 * drop them unsaid (an admin called away mid-edit). An edit opened and left as it was is not one.
 */
const unsaved = new Set<string>();

export function markUnsaved(alias: string, isUnsaved: boolean): void {
  if (isUnsaved) unsaved.add(alias);
  else unsaved.delete(alias);
}

/** "" when nothing is unsaved; else the question to ask before dropping it. */
export function unsavedQuestion(action: string): string {
  if (unsaved.size === 0) return "";
  const which = [...unsaved].slice(0, 3).join(", ") + (unsaved.size > 3 ? ` and ${unsaved.size - 3} more` : "");
  return `The edit of ${which} is not saved. ${action} and drop it?`;
}

/** Forgets every edit (a sign-out that went ahead). */
export function clearUnsaved(): void {
  unsaved.clear();
}
