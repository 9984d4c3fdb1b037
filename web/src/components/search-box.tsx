import { useEffect, useState } from "preact/hooks";

/** A labelled search field that reports its value after typing pauses. */
export function SearchBox(props: { id: string; label: string; placeholder: string; onSearch(v: string): void }) {
  const [value, setValue] = useState("");
  const { onSearch } = props;
  useEffect(() => {
    const t = setTimeout(() => onSearch(value.trim()), 250);
    return () => clearTimeout(t);
  }, [value, onSearch]);
  return (
    <div class="field search">
      <label for={props.id}>{props.label}</label>
      <input id={props.id} type="search" value={value} placeholder={props.placeholder} autocomplete="off" spellcheck={false}
        onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
    </div>
  );
}
